/**
 * The fields of one protobuf message, in order: a length-delimited one (sub-message, string,
 * bytes) as a view of its bytes, one of another wire type with `undefined` (skipped, but yielded:
 * the caller counts its work). Lets a large message be decoded a part at a time; a truncated or
 * malformed message throws.
 */
export function* lengthDelimitedFields(bytes: Uint8Array): Generator<[field: number, value: Uint8Array | undefined]> {
  let pos = 0;
  while (pos < bytes.length) {
    const [tag, afterTag] = varint(bytes, pos);
    const field = Math.floor(tag / 8);
    pos = afterTag;
    switch (tag % 8) {
      case 0:
        pos = varint(bytes, pos)[1];
        yield [field, undefined];
        break;
      case 1:
        pos += 8;
        yield [field, undefined];
        break;
      case 2: {
        const [length, start] = varint(bytes, pos);
        pos = start + length;
        if (pos > bytes.length) throw new Error(`field ${field} runs past the end of the message`);
        yield [field, bytes.subarray(start, pos)];
        break;
      }
      case 5:
        pos += 4;
        yield [field, undefined];
        break;
      default:
        throw new Error(`field ${field} has wire type ${tag % 8}, which this message cannot hold`);
    }
    if (field === 0) throw new Error('a field number is 0');
  }
  if (pos !== bytes.length) throw new Error('the message is truncated');
}

/** A varint at `pos` (up to 64 bits; exact below 2^53, which lengths and tags are) and the position after it. */
function varint(bytes: Uint8Array, pos: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= bytes.length) throw new Error('the message is truncated');
    const byte = bytes[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos];
  }
  throw new Error('a varint is longer than 10 bytes');
}
