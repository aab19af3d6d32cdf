-- Lets go of a request id whose reservation was not stored (its admission gave up or failed after
-- the Redis step): the gateway's retry with the same request id then decides afresh instead of
-- waiting for a row that will never come. Only while the key still names this reservation.
-- KEYS[1] idempotency key of (api key, request id)   ARGV[1] reservation id
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
