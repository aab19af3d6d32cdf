import 'reflect-metadata';
import { main } from './main';

/** Entry point of a worker-only process (the same as PROCESS_ROLE=worker). */
void main('worker');
