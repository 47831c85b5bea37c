// robot_capture headset page: WebXR immersive-vr (hand-tracking optional, controllers as fallback).
// Each XR frame -> one JSON "frame" message on the WebSocket (protocol: robot_capture/xr/protocol.py).
// The tally (green ready / red recording with seconds / amber not ready + reason) comes from the station.
// Test hook: ?emulate=quest3 loads the WebXR emulation runtime (iwer) the test server serves at /emulator/;
// the page's own XR frame loop runs either way.
const JOINTS = ["wrist",
  "thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal", "thumb-tip",
  ...["index-finger", "middle-finger", "ring-finger", "pinky-finger"].flatMap(f =>
    ["metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip"].map(p => `${f}-${p}`))];
const COLOURS = { green: [0.11, 0.5, 0.16], red: [0.75, 0.09, 0.11], amber: [0.72, 0.53, 0.04] };
const $ = id => document.getElementById(id);
const now = () => performance.timeOrigin + performance.now();
const stats = window.xrStats = { sent: 0, frames: 0, errors: [], tally: null, hello: false, refused: "" };
let ws = null, seq = 0, tallyState = { tally: "amber", text: "connecting", elapsed_s: 0, at: now() };

function connect() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(url);
  ws.onopen = () => { $("link").textContent = "station: connected"; };
  ws.onclose = ev => {
    $("link").textContent = `station: disconnected (${ev.code})` + (stats.refused ? "" : ", retrying");
    showTally({ tally: "amber", text: "no connection to the station: the robot holds", elapsed_s: 0 });
    if (!stats.refused) setTimeout(connect, 1000);
  };
  ws.onmessage = ev => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.type === "ping") {
      const t1 = now();
      ws.send(JSON.stringify({ type: "pong", id: m.id, t1: t1, t2: now() }));
      stats.delay_ms = m.delay_ms;
    } else if (m.type === "tally") {
      stats.tally = m; showTally(m);
    } else if (m.type === "hello") {
      stats.hello = true;
    } else if (m.type === "refused") {
      stats.refused = m.reason; $("error").textContent = m.reason;
    } else if (m.type === "error") {
      stats.errors.push(m.reason); $("error").textContent = m.reason;
    }
  };
}

function showTally(m) {
  tallyState = Object.assign({}, m, { at: now() });
  const el = $("tally");
  el.className = m.tally in COLOURS ? m.tally : "amber";
  renderTallyText();
  $("verdict").textContent = m.verdict ? `last episode: ${m.verdict}` : "";
}

function renderTallyText() {
  const m = tallyState;
  const secs = m.tally === "red" ? ` ${(m.elapsed_s + (now() - m.at) / 1000).toFixed(0)} s` : "";
  $("tally").textContent = m.text + secs;
}
setInterval(renderTallyText, 500);

const pose7 = t => [t.position.x, t.position.y, t.position.z,
  t.orientation.x, t.orientation.y, t.orientation.z, t.orientation.w];

function frameMessage(frame, ref, time) {
  const viewer = frame.getViewerPose(ref);
  if (!viewer) return null;
  const msg = { type: "frame", seq: seq++, t: performance.timeOrigin + time, head: pose7(viewer.transform),
                controllers: {}, hands: {} };
  const lost = [];
  for (const src of frame.session.inputSources) {
    const side = src.handedness;
    if (side !== "left" && side !== "right") continue;
    if (src.hand) {
      const joints = [];
      for (const name of JOINTS) {
        const space = src.hand.get(name);
        const p = space && frame.getJointPose(space, ref);
        if (!p) { joints.length = 0; break; }
        joints.push(pose7(p.transform));
      }
      if (joints.length === 25) msg.hands[side] = joints;  // hand tracking lost: no hand, the robot holds
      else lost.push(side);
    } else if (src.gripSpace) {
      const p = frame.getPose(src.gripSpace, ref);
      if (!p) continue;
      const gp = src.gamepad;
      msg.controllers[side] = { pose: pose7(p.transform),
        buttons: gp ? gp.buttons.slice(0, 16).map(b => (b.pressed ? 1 : 0)) : [],
        axes: gp ? Array.from(gp.axes.slice(0, 8), a => Math.max(-1, Math.min(1, a))) : [] };
    }
  }
  stats.handLost = lost;
  return msg;
}

async function enterVR() {
  const session = await navigator.xr.requestSession("immersive-vr",
    { requiredFeatures: ["local-floor"], optionalFeatures: ["hand-tracking"] });
  const canvas = document.createElement("canvas");
  canvas.id = "view";  // the headset's view, mirrored on the 2D page (an emulator or a desktop preview shows it)
  document.body.appendChild(canvas);
  const gl = canvas.getContext("webgl2", { xrCompatible: true }) || canvas.getContext("webgl", { xrCompatible: true });
  await session.updateRenderState({ baseLayer: new XRWebGLLayer(session, gl) });
  const ref = await session.requestReferenceSpace("local-floor");
  $("mode").textContent = "in VR: hands when tracked, else controllers";
  stats.session = true;
  session.addEventListener("end", () => { stats.session = false; $("mode").textContent = "VR ended"; });
  let last = 0, lastFrames = 0;
  const onFrame = (time, frame) => {
    session.requestAnimationFrame(onFrame);
    stats.frames++;
    const msg = frameMessage(frame, ref, time);
    if (msg && ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); stats.sent++; }
    draw(gl, session.renderState.baseLayer, frame.getViewerPose(ref));
    if (time - last >= 1000) {  // the latency line: round trip to the station, XR frame rate, frames sent
      const fps = last ? 1000 * (stats.frames - lastFrames) / (time - last) : 0;
      stats.xr_fps = fps; lastFrames = stats.frames; last = time;
      $("latency").textContent = `station round trip ${stats.delay_ms == null ? "?" : stats.delay_ms.toFixed(1)} ms` +
        ` | XR ${fps.toFixed(0)} fps | frames sent ${stats.sent}`;
    }
  };
  session.requestAnimationFrame(onFrame);
}

// In the headset: the tally as a head-locked panel at the top of each eye's view, its words drawn on a
// 2D canvas and uploaded as a texture when they change (WebGL 1 and 2; no library).
const panel = { canvas: document.createElement("canvas"), text: "", gl: null, prog: null, buf: null, tex: null };
panel.canvas.width = 1024; panel.canvas.height = 200;

function panelText() {
  const m = tallyState;
  const secs = m.tally === "red" ? `  ${(m.elapsed_s + (now() - m.at) / 1000).toFixed(0)} s` : "";
  const lost = (stats.handLost || []).length ? `  | ${stats.handLost.join(" + ")} hand lost: holds` : "";
  return (m.text || "") + secs + (m.verdict ? `  (last: ${m.verdict})` : "") + lost;
}

function panelSetup(gl) {
  const src = (type, text) => { const sh = gl.createShader(type); gl.shaderSource(sh, text); gl.compileShader(sh); return sh; };
  const prog = gl.createProgram();
  gl.attachShader(prog, src(gl.VERTEX_SHADER,
    "attribute vec2 p; varying vec2 uv; void main() { uv = vec2(p.x * 0.5 + 0.5, 0.5 - p.y * 0.5);" +
    " gl_Position = vec4(p.x * 0.45, 0.6 + p.y * 0.11, 0.0, 1.0); }"));
  gl.attachShader(prog, src(gl.FRAGMENT_SHADER,
    "precision mediump float; varying vec2 uv; uniform sampler2D t; void main() { gl_FragColor = texture2D(t, uv); }"));
  gl.linkProgram(prog);
  panel.buf = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, panel.buf);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  panel.tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, panel.tex);
  for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.LINEAR], [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE],
                        [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
  panel.gl = gl; panel.prog = prog;
}

function panelUpload(gl) {
  const text = panelText(), line = $("latency").textContent;
  if (text + line === panel.text) return;
  const c = panel.canvas.getContext("2d"), col = COLOURS[tallyState.tally] || COLOURS.amber;
  c.fillStyle = `rgb(${col.map(v => Math.round(v * 255)).join(",")})`;
  c.fillRect(0, 0, panel.canvas.width, panel.canvas.height);
  c.fillStyle = tallyState.tally === "amber" ? "#111" : "#fff";
  c.font = "bold 56px system-ui, sans-serif"; c.textBaseline = "middle";
  c.fillText(text.slice(0, 60), 24, 70, panel.canvas.width - 48);
  c.font = "32px system-ui, sans-serif";  // the latency line under the tally
  c.fillText(line.slice(0, 90), 24, 150, panel.canvas.width - 48);
  gl.bindTexture(gl.TEXTURE_2D, panel.tex);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, panel.canvas);
  panel.text = text + line; stats.vrTally = text; stats.vrLatency = line;
}

function draw(gl, layer, viewer) {
  if (panel.gl !== gl) panelSetup(gl);
  gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
  gl.clearColor(0.07, 0.07, 0.07, 1);
  gl.clear(gl.COLOR_BUFFER_BIT);
  if (!viewer) return;
  panelUpload(gl);
  gl.useProgram(panel.prog);
  gl.bindBuffer(gl.ARRAY_BUFFER, panel.buf);
  const loc = gl.getAttribLocation(panel.prog, "p");
  gl.enableVertexAttribArray(loc);
  gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
  gl.bindTexture(gl.TEXTURE_2D, panel.tex);
  for (const view of viewer.views) {
    const vp = layer.getViewport(view);
    gl.viewport(vp.x, vp.y, vp.width, vp.height);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
  const err = gl.getError();
  if (err) stats.glError = err;
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (params.get("emulate")) {  // tests only: the station serves /emulator/ only when a test built it so
    const iwer = await import("/emulator/iwer.module.js");
    const device = new iwer.XRDevice(iwer.metaQuest3);
    device.installRuntime({ forceInstall: true });  // headless Chromium has a native navigator.xr without devices
    window.xrDevice = device; window.iwer = iwer;
  }
  connect();
  const ok = navigator.xr && await navigator.xr.isSessionSupported("immersive-vr");
  $("enter").disabled = !ok;
  $("mode").textContent = ok ? "ready to enter VR" : "this browser has no immersive WebXR (open this page in the headset)";
  $("enter").addEventListener("click", () => enterVR().catch(e => { $("error").textContent = `VR: ${e.message}`; }));
  window.xrReady = true;
}
main();
