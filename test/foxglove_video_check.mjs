// robot_capture test copy of shared/tools/foxglove/foxglove_check.mjs (that folder is read-only),
// extended for foxglove_msgs/msg/CompressedVideo: the image spot check goes by type, not by the topic
// name (a camera topic keeps its name in the bag and holds CompressedVideo), and every file's first
// CompressedVideo message per topic must be an H.264 IDR (NAL type 5) with its SPS (type 7), as
// Foxglove's video player needs a keyframe to start.
// Opens every .mcap of the given bag dirs as Foxglove does: McapIndexedReader (summary CRC,
// chunk CRCs, message index), McapStreamReader (whole-file linear pass, DataEnd CRC),
// @foxglove/rosmsg parse(ros2:true), @foxglove/rosmsg2-serialization MessageReader.
import fs from "node:fs";
import path from "node:path";
import { McapIndexedReader, McapStreamReader } from "@mcap/core";
import { parse } from "@foxglove/rosmsg";
import { MessageReader } from "@foxglove/rosmsg2-serialization";
import { crc32 } from "@foxglove/crc";
import yaml from "./yaml_min.cjs";
import { loadDecompressHandlers } from "@mcap/support";
const decompressHandlers = await loadDecompressHandlers();

const dirs = process.argv.slice(2);
let failures = 0;
const fail = (m) => { failures++; console.log("FAIL:", m); };

// H.264 Annex B: the NAL unit types after each 00 00 01 start code (ITU-T H.264 7.4.1.2)
function nalTypes(d) {
  const out = [];
  for (let i = 0; i + 3 < d.length; i++) if (d[i] === 0 && d[i + 1] === 0 && d[i + 2] === 1) out.push(d[i + 3] & 0x1f);
  return out;
}

function readable(buf) {
  return {
    size: async () => BigInt(buf.byteLength),
    read: async (offset, len) => buf.subarray(Number(offset), Number(offset + len)),
  };
}

for (const dir of dirs) {
  const meta = yaml(fs.readFileSync(path.join(dir, "metadata.yaml"), "utf8"));
  const mcaps = fs.readdirSync(dir).filter((f) => f.endsWith(".mcap")).sort();
  const perTopic = new Map();
  console.log(`== ${dir}  (${mcaps.length} mcap)`);
  for (const f of mcaps) {
    const buf = new Uint8Array(fs.readFileSync(path.join(dir, f)));
    // 1) linear stream pass, validates chunk CRCs + DataEnd data section CRC
    const sr = new McapStreamReader({ validateCrcs: true, decompressHandlers });
    sr.append(buf);
    let rec, nStream = 0, dataEnd, kinds = {};
    try {
      while ((rec = sr.nextRecord())) {
        kinds[rec.type] = (kinds[rec.type] ?? 0) + 1;
        if (rec.type === "Message") nStream++;
        if (rec.type === "DataEnd") dataEnd = rec;
      }
      if (!sr.done()) fail(`${f}: stream reader not done at EOF`);
    } catch (e) { fail(`${f}: McapStreamReader: ${e.message}`); }
    // data section crc recomputed by hand: bytes from 0 to DataEnd record start
    const ir = await McapIndexedReader.Initialize({ readable: readable(buf), decompressHandlers });
    const dataEndOffset = Number(ir.dataEndOffset);
    const calc = crc32(buf.subarray(0, dataEndOffset));
    console.log(`  ${f}: compression=${[...new Set(ir.chunkIndexes.map((c) => c.compression || "none"))]} profile=${ir.header.profile} library="${ir.header.library}" records=${JSON.stringify(kinds)}`);
    console.log(`  dataSectionCrc stored=${dataEnd?.dataSectionCrc} ${dataEnd?.dataSectionCrc === 0 ? "(0 = not written, allowed by spec)" : dataEnd?.dataSectionCrc === calc ? "OK" : "MISMATCH computed=" + calc}; summaryCrc=${ir.footer.summaryCrc} (verified by Initialize); chunk CRCs: ${ir.chunkIndexes.length} chunks validated`);
    if (dataEnd && dataEnd.dataSectionCrc !== 0 && dataEnd.dataSectionCrc !== calc) fail(`${f}: data section CRC mismatch`);
    if (ir.header.profile !== "ros2") fail(`${f}: profile ${ir.header.profile}`);
    // 2) schemas -> parsed definitions -> readers (exactly as @foxglove/mcap-support parseChannel does for ros2msg/cdr)
    const readers = new Map();
    for (const [id, ch] of ir.channelsById) {
      const sc = ir.schemasById.get(ch.schemaId);
      if (ch.messageEncoding !== "cdr") fail(`${ch.topic}: messageEncoding ${ch.messageEncoding}`);
      if (!sc || sc.encoding !== "ros2msg") { fail(`${ch.topic}: schema encoding ${sc?.encoding}`); continue; }
      try {
        const text = new TextDecoder().decode(sc.data);
        const defs = parse(text, { ros2: true });
        readers.set(id, { reader: new MessageReader(defs), topic: ch.topic, type: sc.name, root: defs[0] });
      } catch (e) { fail(`${ch.topic} [${sc.name}]: rosmsg parse: ${e.message}`); }
    }
    // 3) decode EVERY message through indexed readMessages (validates chunk CRCs)
    let nIdx = 0; const samples = new Map(); const sampleTypes = new Map(); const trailing = new Map();
    try {
      for await (const m of ir.readMessages({ validateCrcs: true })) {
        nIdx++;
        const r = readers.get(m.channelId);
        const t = perTopic.get(r.topic) ?? { n: 0, err: 0, firstErr: null };
        perTopic.set(r.topic, t);
        try {
          const msg = r.reader.readMessage(m.data);
          t.n++;
          const extra = m.data.byteLength - r.reader.lastReadByteLength();
          if (extra > 3) trailing.set(r.topic, Math.max(trailing.get(r.topic) ?? 0, extra));
          if (!samples.has(r.topic)) { samples.set(r.topic, msg); sampleTypes.set(r.topic, r.type); }
          if (r.type === "foxglove_msgs/msg/CompressedVideo") {
            if (msg.format !== "h264" || !(msg.data.length > 0)) fail(`${r.topic}: video format ${msg.format}, ${msg.data.length} bytes`);
            if (samples.get(r.topic) === msg) {
              const nals = nalTypes(msg.data);
              if (!nals.includes(5) || !nals.includes(7)) fail(`${f} ${r.topic}: first video frame of the file is not a keyframe (NAL types ${nals})`);
              else console.log(`  ${r.topic}: first frame of ${f} is an IDR with SPS (NAL types ${nals})`);
            }
          }
        } catch (e) { t.err++; if (!t.firstErr) t.firstErr = e.message; }
      }
    } catch (e) { fail(`${f}: readMessages: ${e.message}`); }
    if (nIdx !== nStream) fail(`${f}: indexed ${nIdx} vs stream ${nStream} messages`);
    if (ir.statistics && Number(ir.statistics.messageCount) !== nIdx) fail(`${f}: statistics ${ir.statistics.messageCount} vs ${nIdx}`);
    for (const [t, x] of trailing) fail(`${t}: up to ${x} trailing bytes after decode`);
    // attachments + metadata (CRC-validated)
    for await (const a of ir.readAttachments({ validateCrcs: true })) console.log(`  attachment ${a.name} ${a.mediaType} ${a.data.byteLength} B`);
    for await (const md of ir.readMetadata()) console.log(`  metadata record "${md.name}" keys=${[...md.metadata.keys()].join(",")}`);
    // spot checks
    const S = (t) => samples.get(t);
    const img = [...samples].find(([t]) => sampleTypes.get(t) === "sensor_msgs/msg/Image");
    if (img) { const m = img[1]; console.log(`  ${img[0]}: ${m.width}x${m.height} ${m.encoding} step=${m.step} data.length=${m.data.length} expected=${m.step * m.height} frame=${m.header.frame_id}`); if (m.data.length !== m.step * m.height) fail("image data length"); }
    const ci = [...samples].find(([t]) => t.endsWith("camera_info"));
    if (ci) { const m = ci[1]; console.log(`  ${ci[0]}: ${m.width}x${m.height} model=${m.distortion_model} K=[${Array.from(m.k).map((v) => v.toFixed(1))}] d.len=${m.d.length}`); }
    for (const t of ["/joint_states", "/retarget/joint_command", "/exo/joint_states"]) {
      const m = S(t); if (!m) continue;
      console.log(`  ${t}: stamp=${m.header.stamp.sec}.${m.header.stamp.nanosec} names(${m.name.length})=[${m.name.slice(0, 3)}...] position.len=${m.position.length} velocity.len=${m.velocity.length} effort.len=${m.effort.length} pos[0]=${m.position[0]?.toFixed(4)}`);
      if (m.name.length !== m.position.length) fail(`${t}: names vs position length`);
    }
    for (const t of ["/retarget/targets"]) { const m = S(t); if (m) console.log(`  ${t}: frame=${m.header.frame_id} poses=${m.poses.length} p0=${JSON.stringify(m.poses[0]?.position)}`); }
    for (const t of ["/vr/head"]) { const m = S(t); if (m) console.log(`  ${t}: frame=${m.header.frame_id} pos=${JSON.stringify(m.pose.position)} q=${JSON.stringify(m.pose.orientation)}`); }
    { const m = S("/diagnostics"); if (m) console.log(`  /diagnostics: status=${m.status.length} [${m.status.map((s) => `${s.name}:lvl${s.level}:"${s.message}" kv=${s.values.length}`).join("; ")}] first kv=${JSON.stringify(m.status[0]?.values.slice(0, 3))}`); }
  }
  // compare with metadata.yaml
  const info = meta.rosbag2_bagfile_information;
  let total = 0;
  for (const tm of info.topics_with_message_count) {
    const name = tm.topic_metadata.name, want = Number(tm.message_count);
    const got = perTopic.get(name) ?? { n: 0, err: 0 };
    total += got.n;
    const ok = got.n === want && got.err === 0;
    if (!ok) fail(`${name}: decoded ${got.n}, errors ${got.err} (${got.firstErr}), metadata.yaml ${want}`);
    console.log(`  ${ok ? "ok  " : "BAD "} ${name.padEnd(28)} ${tm.topic_metadata.type.padEnd(36)} decoded=${got.n} err=${got.err} metadata=${want}`);
  }
  for (const t of perTopic.keys()) if (!info.topics_with_message_count.some((x) => x.topic_metadata.name === t)) fail(`${t} in mcap but not in metadata.yaml`);
  console.log(`  total decoded ${total} / metadata.yaml message_count ${info.message_count}`);
  if (total !== Number(info.message_count)) fail("total count");
}
console.log(failures ? `RESULT: ${failures} failure(s)` : "RESULT: all OK");
process.exit(failures ? 1 : 0);
