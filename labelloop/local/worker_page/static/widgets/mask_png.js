// The mask widget's PNG codec (loaded by masks.js): the model's mask (a data: URL of a greyscale
// PNG, pixel = class id) into a class-id buffer, and the buffer into the answer's PNG.
(() => {
  "use strict";

  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  function toBase64(bytes) {
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(bin);
  }
  // createImageBitmap decodes in memory (the page's CSP loads no data: image), and without colour
  // conversion a grey level, the class id, comes back as it was written.
  async function decodeMask(url, W, H, maxId) {
    const blob = new Blob([fromBase64(url.slice(url.indexOf(",") + 1))], {type: "image/png"});
    const bitmap = await createImageBitmap(blob, {colorSpaceConversion: "none", premultiplyAlpha: "none"});
    if (bitmap.width !== W || bitmap.height !== H) throw new Error(`${bitmap.width} x ${bitmap.height} pixels, not the image's ${W} x ${H}`);
    const c = document.createElement("canvas");
    c.width = W; c.height = H;
    const g = c.getContext("2d", {willReadFrequently: true});
    g.drawImage(bitmap, 0, 0);
    const px = g.getImageData(0, 0, W, H).data, ids = new Uint8Array(W * H);
    for (let i = 0; i < ids.length; i++) {
      if (px[4 * i] > maxId) throw new Error("class id " + px[4 * i] + " is not one of this job's");
      ids[i] = px[4 * i];
    }
    return ids;
  }

  const CRC_TABLE = Array.from({length: 256}, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  function crc32(bytes) {
    let c = 0xffffffff;
    for (const b of bytes) c = CRC_TABLE[(c ^ b) & 255] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }
  function chunk(type, data) {  // a PNG chunk: length, type, data, CRC of type + data
    const out = new Uint8Array(12 + data.length), v = new DataView(out.buffer);
    v.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  }
  // zlib (RFC 1950) of `raw`: the browser's own deflate where it has one; else 'stored' blocks,
  // uncompressed but valid, for browsers without CompressionStream.
  async function zlib(raw) {
    if (typeof CompressionStream === "function") {
      const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
      return new Uint8Array(await new Response(stream).arrayBuffer());
    }
    const blocks = Math.max(1, Math.ceil(raw.length / 65535));
    const out = new Uint8Array(2 + 5 * blocks + raw.length + 4);
    out[0] = 0x78; out[1] = 0x01;  // deflate, 32 K window, no dictionary; (0x7801 % 31 == 0)
    let o = 2;
    for (let b = 0; b < blocks; b++) {
      const part = raw.subarray(b * 65535, (b + 1) * 65535), n = part.length;
      out.set([b === blocks - 1 ? 1 : 0, n & 255, n >> 8, ~n & 255, (~n >> 8) & 255], o);
      out.set(part, o + 5);
      o += 5 + n;
    }
    let a = 1, d = 0;  // Adler-32 of the uncompressed bytes
    for (const x of raw) { a = (a + x) % 65521; d = (d + a) % 65521; }
    new DataView(out.buffer).setUint32(o, ((d << 16) | a) >>> 0);
    return out;
  }
  // The class map as an 8-bit greyscale PNG: a byte a pixel, each row after filter byte 0 (none).
  async function encodeMask(ids, W, H) {
    const raw = new Uint8Array((W + 1) * H);
    for (let y = 0; y < H; y++) raw.set(ids.subarray(y * W, (y + 1) * W), y * (W + 1) + 1);
    const header = new Uint8Array(13), v = new DataView(header.buffer);
    v.setUint32(0, W); v.setUint32(4, H);
    header[8] = 8;  // bits a pixel; colour type 0 (greyscale), deflate, no interlace: the zeros after it
    const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header),
                   chunk("IDAT", await zlib(raw)), chunk("IEND", new Uint8Array(0))];
    return new Uint8Array(await new Blob(parts).arrayBuffer());
  }

  window.labelloopMaskPng = {decodeMask, encodeMask, toBase64};
})();
