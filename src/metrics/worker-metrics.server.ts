import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { Inject, Injectable, Logger, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { MetricsService } from './metrics.service';

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The worker's own HTTP port (SPEC §7, WORKER_METRICS_PORT; 0: off): `GET /metrics` (this
 * process's registry, the same the API's /metrics serves) and `GET /health/live`, so a worker
 * without the API can be scraped and probed. Nothing else is served there.
 */
@Injectable()
export class WorkerMetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('WorkerMetrics');
  private server: Server | undefined;

  constructor(
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** The port it listens on (useful when configured as an ephemeral one), or undefined when off. */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.workerMetricsPort === 0) return;
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`WORKER_METRICS_PORT ${this.config.workerMetricsPort} cannot be opened (${err.code ?? err.message}); set another port, or 0 to turn it off`)),
      );
      server.listen(this.config.workerMetricsPort, this.config.host, () => resolve());
    });
    this.server = server;
    this.logger.log({ msg: 'Worker metrics and liveness are served', port: this.port, paths: ['/metrics', '/health/live'] });
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, JSON_TYPE, errorBody('Only GET is served here', 'invalid_request_error', 'method_not_allowed'));
    if (path === '/health/live') return send(res, 200, JSON_TYPE, JSON.stringify({ status: 'ok' }));
    if (path === '/metrics') {
      try {
        return send(res, 200, this.metrics.registry.contentType, await this.metrics.registry.metrics());
      } catch {
        return send(res, 500, JSON_TYPE, errorBody('Internal server error', 'server_error', 'internal_error'));
      }
    }
    return send(res, 404, JSON_TYPE, errorBody('No such route', 'not_found_error', 'route_not_found'));
  }
}

function errorBody(message: string, type: string, code: string): string {
  return JSON.stringify({ error: { message, type, code, param: null } });
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }).end(body);
}

/** Loaded by processes that run the worker (PROCESS_ROLE all or worker). */
@Module({ providers: [WorkerMetricsServer], exports: [WorkerMetricsServer] })
export class WorkerMetricsModule {}
