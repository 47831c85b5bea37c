// Independent MCAP validation with the reference TypeScript library (@mcap/core):
// indexed read of every message + a full stream read with CRC validation.
// Setup (not a project dependency): npm install --prefix /tmp/mcapjs @mcap/core @foxglove/wasm-zstd @foxglove/wasm-lz4
// Run: NODE_PATH=/tmp/mcapjs/node_modules node benchmarks/mcap_validate.js FILE.mcap ...
// usage: node validate.js file.mcap ...  (indexed read + full stream read with CRC validation)
const fs = require("fs");
const { McapIndexedReader, McapStreamReader } = require("@mcap/core");
const zstd = require("@foxglove/wasm-zstd");
const lz4 = require("@foxglove/wasm-lz4");
async function main() {
  await zstd.isLoaded; await lz4.isLoaded;
  const decompressHandlers = {
    zstd: (buf, size) => zstd.decompress(buf, Number(size)),
    lz4: (buf, size) => lz4(buf, Number(size)),
  };
  for (const path of process.argv.slice(2)) {
    const data = fs.readFileSync(path);
    const readable = { size: async () => BigInt(data.length),
      read: async (off, len) => data.subarray(Number(off), Number(off + len)) };
    const r = await McapIndexedReader.Initialize({ readable, decompressHandlers });
    let n = 0;
    for await (const m of r.readMessages()) n++;
    const s = new McapStreamReader({ validateCrcs: true, decompressHandlers });
    s.append(data);
    let rec, m2 = 0, footer = false;
    while ((rec = s.nextRecord())) { if (rec.type === "Message") m2++; if (rec.type === "Footer") footer = true; }
    if (!s.done()) throw new Error(path + ": stream reader not done");
    const st = r.statistics;
    console.log(`${path}: OK profile=${r.header.profile} indexed=${n} stream=${m2} stats=${st.messageCount} footer=${footer}`);
    if (BigInt(n) !== st.messageCount || n !== m2) throw new Error("count mismatch");
  }
}
main().catch((e) => { console.error("INVALID:", e.message || e); process.exit(1); });
