import { ApiKey } from '../auth/api-key.entity';
import { Org } from '../auth/org.entity';

/** Every entity, listed once; the data source, the CLI and the drift check use this list. */
export const ENTITIES = [Org, ApiKey];
