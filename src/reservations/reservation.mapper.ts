import { unixSeconds } from '../common/unix-time';
import { ReservationDto } from './dto/reservation.dto';
import { Reservation } from './reservation.entity';
import { ReservationStatus, StoredDecision } from './reservation-decision';

/** `held` past its expires_at reads as `expired`. */
export function statusOf(row: Reservation, nowMs = Date.now()): ReservationStatus {
  if (row.status === 'held' && row.expiresAt !== null && row.expiresAt.getTime() <= nowMs) return 'expired';
  return row.status;
}

/**
 * Seconds until every denying budget's window has reset (null when granted, or when only an
 * unpriced model denied it: setting a price, not time, lifts that).
 */
export function retryAfter(decision: StoredDecision, nowMs = Date.now()): number | null {
  const resets = decision.denied_by.filter((d) => d.reason !== 'unpriced_model').map((d) => d.resets_at);
  if (resets.length === 0) return null;
  return Math.max(0, Math.max(...resets) - Math.floor(nowMs / 1000));
}

export function toReservationDto(row: Reservation, nowMs = Date.now()): ReservationDto {
  const decision = row.decision as unknown as StoredDecision;
  return {
    object: 'llm.budget.reservation',
    id: row.id,
    request_id: row.requestId,
    api_key_id: row.apiKeyId,
    model: row.model,
    status: statusOf(row, nowMs),
    allowed: row.status !== 'denied',
    ...(decision.reason ? { reason: decision.reason } : {}),
    granted_output_tokens: Number(row.grantedOutputTokens),
    reserved: { tokens: String(row.reservedTokens), cost_nano: String(row.reservedCostNano) },
    expires_at: row.expiresAt ? unixSeconds(row.expiresAt) : null,
    retry_after: row.status === 'denied' ? retryAfter(decision, nowMs) : null,
    denied_by: decision.denied_by,
    budgets: decision.budgets,
  };
}
