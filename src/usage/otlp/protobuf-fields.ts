/** One field of a protobuf message as read from the wire. */
export type ProtobufField =
  /** A varint (wire type 0), as the unsigned 64-bit integer it encodes. */
  | { field: number; wire: 0; varint: bigint }
  /** Fixed 64 bits (wire type 1), little-endian; fixed 32 bits (wire type 5). */
  | { field: number; wire: 1 | 5; bytes: Uint8Array }
  /** Length-delimited (wire type 2): a sub-message, a string or bytes, as a view of the message's bytes. */
  | { field: number; wire: 2; bytes: Uint8Array };

/**
 * The fields of one protobuf message, in order, each read without decoding what it holds: lets
 * a large message be decoded a part at a time, and a caller count its work per field. A truncated
 * or malformed message throws.
 */
export function* protobufFields(bytes: Uint8Array): Generator<ProtobufField> {
  let pos = 0;
  while (pos < bytes.length) {
    const [tagValue, afterTag] = varint(bytes, pos);
    const tag = Number(tagValue);
    const field = Math.floor(tag / 8);
    if (field === 0) throw new Error('a field number is 0');
    pos = afterTag;
    const wire = tag % 8;
    if (wire === 0) {
      const [value, after] = varint(bytes, pos);
      pos = after;
      yield { field, wire, varint: value };
    } else if (wire === 1 || wire === 5 || wire === 2) {
      let start = pos;
      let length = wire === 1 ? 8 : 4;
      if (wire === 2) [length, start] = varint(bytes, pos).map(Number) as [number, number];
      pos = start + length;
      if (pos > bytes.length) throw new Error(`field ${field} runs past the end of the message`);
      yield { field, wire, bytes: bytes.subarray(start, pos) };
    } else {
      throw new Error(`field ${field} has wire type ${wire}, which this message cannot hold`);
    }
  }
}

/** A varint at `pos` (at most 10 bytes, 64 bits) and the position after it. */
function varint(bytes: Uint8Array, pos: number): [bigint, number] {
  let value = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos >= bytes.length) throw new Error('the message is truncated');
    const byte = bytes[pos++];
    value |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return [BigInt.asUintN(64, value), pos];
  }
  throw new Error('a varint is longer than 10 bytes');
}
