import { ArgumentsHost, Catch, ExceptionFilter, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { describeError, toAppException } from './error-mapping';

/** The one global filter: every error leaves in the SPEC §6 shape; unknown ones as a bare 500. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(err: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw err;
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { exception, unexpected } = toAppException(err);
    if (unexpected) {
      this.logger.error({ msg: 'Unhandled error', reqId: request?.id, ...describeError(err) });
    } else if (exception.status === 503) {
      this.logger.warn({ msg: 'Dependency unavailable', reqId: request?.id, ...describeError(err) });
    }
    if (reply.sent) return;
    for (const [name, value] of Object.entries(exception.headers)) reply.header(name, value);
    void reply.status(exception.status).type('application/json; charset=utf-8').send(exception.body());
  }
}
