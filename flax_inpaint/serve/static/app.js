// flax_inpaint's page: open an image, paint the holes, POST both to /api/inpaint, show the
// repair with a before/after slider. Plain JS, no build step, no dependency.
//
// The mask canvas has the image's full resolution (a 4000x3000 photo gets a 4000x3000
// mask) and is scaled down by CSS for display; pointer positions are mapped to image
// pixels. Painted pixels are opaque red and the rest transparent, which the server's rule
// (colour >= 128 and alpha >= 128) reads as holes, so the canvas is sent as it is.
'use strict';

const HOLE_COLOUR = '#ff3b30';
const MIN_BRUSH = 2;
const MAX_BRUSH = 200;

const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const context = canvas.getContext('2d');

const state = {
  imageBlob: null,      // What is repaired: the opened file, or a previous result.
  imageName: 'image',
  imageUrl: null,
  resultBlob: null,
  resultUrl: null,
  history: [],          // Mask actions, replayed on undo: strokes, clears, mask files.
  redo: [],
  stroke: null,         // The stroke being painted.
  erasing: false,
  busy: false,
  holeThreshold: null,  // The server's rule, read from api/health at start-up (no copy here).
};

// Names of the methods api/health lists, as the menu shows them.
const METHOD_LABELS = {
  model: 'Model', pushpull: 'Push-pull fill', ns: 'OpenCV Navier-Stokes', telea: 'OpenCV Telea',
  patchmatch: 'PatchMatch',
};

// ---------------------------------------------------------------------------------
// Messages.

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function stemOf(name) {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

// ---------------------------------------------------------------------------------
// Opening images.

async function openImage(blob, name) {
  const url = URL.createObjectURL(blob);
  const image = new Image();  // Decoded aside: a bad file leaves the current image as it is.
  image.src = url;
  try {
    await image.decode();
  } catch (error) {
    URL.revokeObjectURL(url);
    showError(`${name}: not an image this browser can open`);
    return;
  }
  if (state.imageUrl && state.imageUrl !== state.resultUrl) URL.revokeObjectURL(state.imageUrl);
  Object.assign(state, {imageBlob: blob, imageName: name, imageUrl: url, history: [], redo: []});
  $('source').src = url;
  canvas.width = image.naturalWidth;   // The mask at the image's full resolution.
  canvas.height = image.naturalHeight;
  $('stage').style.setProperty('--aspect', image.naturalWidth / image.naturalHeight);
  $('stage').hidden = false;
  $('empty').hidden = true;
  showError('');
  redraw();
}

function openFirstImage(files) {
  const file = files && files[0];
  if (file) openImage(file, file.name);
}

// ---------------------------------------------------------------------------------
// The mask: actions, replay, undo and redo.

// Draws a stroke's dot and segments from point `from` on. Painting draws them as the
// pointer moves and undo replays them all: the same calls in the same order, so a replayed
// mask is pixel for pixel the one that was painted (anti-aliased edges included).
function drawStroke(stroke, from = 0) {
  context.save();
  context.globalCompositeOperation = stroke.erase ? 'destination-out' : 'source-over';
  context.strokeStyle = context.fillStyle = HOLE_COLOUR;
  context.lineWidth = 2 * stroke.radius;
  context.lineCap = 'round';
  const points = stroke.points;
  if (from === 0) {
    context.beginPath();
    context.arc(points[0][0], points[0][1], stroke.radius, 0, 2 * Math.PI);
    context.fill();
  }
  for (let i = Math.max(from, 1); i < points.length; i++) {
    context.beginPath();
    context.moveTo(...points[i - 1]);
    context.lineTo(...points[i]);
    context.stroke();
  }
  context.restore();
}

function apply(action) {
  if (action.kind === 'stroke') {
    drawStroke(action);
  } else {
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (action.kind === 'mask') context.drawImage(action.canvas, 0, 0);
  }
}

function redraw() {
  context.clearRect(0, 0, canvas.width, canvas.height);
  state.history.forEach(apply);
  updateButtons();
}

function record(action) {
  state.history.push(action);
  state.redo = [];
  updateButtons();
}

function undo() {
  if (!state.history.length) return;
  state.redo.push(state.history.pop());
  redraw();
}

function redo() {
  if (!state.redo.length) return;
  state.history.push(state.redo.pop());
  redraw();
}

function clearMask() {
  if (!state.history.length) return;
  record({kind: 'clear'});
  apply({kind: 'clear'});
}

function maskIsEmpty() {
  // Exact for the common cases without reading 12 megapixels back.
  const last = state.history.map((a) => a.kind).lastIndexOf('clear');
  return !state.history.slice(last + 1).some((a) => a.kind === 'mask' || !a.erase);
}

// A mask file (white = hole, as for --mode=inpaint) becomes red strokes on the canvas.
async function openMask(file) {
  if (!state.imageBlob) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {imageOrientation: 'from-image'});
  } catch (error) {
    showError(`${file.name}: not an image this browser can open`);
    return;
  }
  if (bitmap.width !== canvas.width || bitmap.height !== canvas.height) {
    showError(`${file.name} is ${bitmap.width}x${bitmap.height} but the image is ` +
              `${canvas.width}x${canvas.height}: they must be the same size`);
    return;
  }
  const layer = document.createElement('canvas');
  layer.width = bitmap.width;
  layer.height = bitmap.height;
  const layerContext = layer.getContext('2d');
  layerContext.drawImage(bitmap, 0, 0);
  const pixels = layerContext.getImageData(0, 0, layer.width, layer.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    // The server's rule: any colour channel >= its threshold, and not transparent.
    const level = state.holeThreshold;
    const hole = Math.max(data[i], data[i + 1], data[i + 2]) >= level && data[i + 3] >= level;
    data[i] = 255; data[i + 1] = 59; data[i + 2] = 48; data[i + 3] = hole ? 255 : 0;
  }
  layerContext.putImageData(pixels, 0, 0);
  const action = {kind: 'mask', canvas: layer};
  record(action);
  apply(action);
  showError('');
}

// ---------------------------------------------------------------------------------
// Painting: pointer positions in image pixels.

function brushSize() {
  return Number($('brush').value);  // Screen pixels: the same feel at any image size.
}

function imageScale() {
  return canvas.width / canvas.getBoundingClientRect().width;
}

function toImage(event) {
  const rect = canvas.getBoundingClientRect();
  return [(event.clientX - rect.left) * canvas.width / rect.width,
          (event.clientY - rect.top) * canvas.height / rect.height];
}

function moveCursor(event) {
  const cursor = $('cursor');
  const rect = canvas.getBoundingClientRect();
  cursor.hidden = false;
  cursor.style.left = `${event.clientX - rect.left}px`;
  cursor.style.top = `${event.clientY - rect.top}px`;
  cursor.style.width = cursor.style.height = `${brushSize()}px`;
}

function onPointerDown(event) {
  if (event.button !== 0 || !state.imageBlob || state.busy) return;
  canvas.setPointerCapture(event.pointerId);
  state.stroke = {kind: 'stroke', erase: state.erasing, radius: brushSize() / 2 * imageScale(),
                  points: [toImage(event)]};
  drawStroke(state.stroke);
  event.preventDefault();
}

function onPointerMove(event) {
  moveCursor(event);
  const stroke = state.stroke;
  if (!stroke) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  const from = stroke.points.length;
  for (const each of (events.length ? events : [event])) stroke.points.push(toImage(each));
  drawStroke(stroke, from);
}

function onPointerUp() {
  if (!state.stroke) return;
  record(state.stroke);
  state.stroke = null;
}

// ---------------------------------------------------------------------------------
// Repairing.

function setBusy(busy) {
  state.busy = busy;
  $('progress').hidden = !busy;
  updateButtons();
  clearInterval(setBusy.timer);
  if (!busy) return;
  const start = performance.now();
  $('elapsed').textContent = '';
  setBusy.timer = setInterval(() => {
    $('elapsed').textContent = `${((performance.now() - start) / 1000).toFixed(0)} s`;
  }, 1000);
}

async function errorOf(response) {
  try {
    return (await response.json()).error;
  } catch (error) {
    return `${response.status} ${response.statusText}`;
  }
}

async function repair() {
  if (!state.imageBlob || state.busy) return;
  if (maskIsEmpty()) {
    showError('Paint over the damage first (or open a mask file).');
    return;
  }
  showError('');
  setBusy(true);
  const start = performance.now();
  try {
    const mask = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    const form = new FormData();
    form.append('image', state.imageBlob, state.imageName);
    form.append('mask', mask, 'mask.png');
    form.append('method', $('method').value);
    const response = await fetch('api/inpaint', {method: 'POST', body: form});
    if (!response.ok) throw new Error(await errorOf(response));
    showResult(await response.blob(), (performance.now() - start) / 1000);
  } catch (error) {
    showError(`Repair failed: ${error.message}`);
  } finally {
    setBusy(false);
  }
}

function showResult(blob, seconds) {
  if (state.resultUrl && state.resultUrl !== state.imageUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultBlob = blob;
  state.resultUrl = URL.createObjectURL(blob);
  $('result').src = state.resultUrl;
  $('before').src = state.imageUrl;
  $('result-stage').style.setProperty('--aspect', canvas.width / canvas.height);
  const download = $('download');
  download.href = state.resultUrl;
  download.download = `${stemOf(state.imageName)}-repaired.png`;
  $('status').textContent = `${canvas.width}x${canvas.height}, ${seconds.toFixed(1)} s`;
  $('result-panel').hidden = false;
}

async function repairAgain() {
  if (!state.resultBlob) return;
  const name = `${stemOf(state.imageName).replace(/-repaired$/, '')}-repaired.png`;
  await openImage(state.resultBlob, name);
  $('result-panel').hidden = true;  // Once the result is the image to paint on.
}

function showSplit() {
  const split = `${$('compare').value}%`;
  $('result-stage').style.setProperty('--split', split);
}

// ---------------------------------------------------------------------------------
// Controls.

function updateButtons() {
  const ready = Boolean(state.imageBlob) && !state.busy;
  $('undo').disabled = !ready || !state.history.length;
  $('redo').disabled = !ready || !state.redo.length;
  $('clear').disabled = !ready || !state.history.length;
  $('repair').disabled = !ready;
  $('mask-file').disabled = !ready;
  $('again').disabled = state.busy;
}

function setBrush(size) {
  const clamped = Math.min(MAX_BRUSH, Math.max(MIN_BRUSH, Math.round(size)));
  $('brush').value = clamped;
  $('brush-size').textContent = clamped;
}

function toggleEraser() {
  state.erasing = !state.erasing;
  $('eraser').setAttribute('aria-pressed', String(state.erasing));
}

function onKey(event) {
  if (event.target instanceof HTMLInputElement && event.target.type !== 'range') return;
  const key = event.key.toLowerCase();
  const command = event.ctrlKey || event.metaKey;
  if (command && key === 'z') {
    event.shiftKey ? redo() : undo();
  } else if (command && key === 'y') {
    redo();
  } else if (!command && key === 'e') {
    toggleEraser();
  } else if (key === '[' || key === ']') {
    setBrush(brushSize() * (key === ']' ? 1.25 : 0.8));
  } else {
    return;
  }
  event.preventDefault();
}

function watchDrops() {
  const drop = $('drop');
  for (const name of ['dragenter', 'dragover']) {
    document.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add('dragging');
    });
  }
  document.addEventListener('dragleave', (event) => {
    if (!event.relatedTarget) drop.classList.remove('dragging');
  });
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('dragging');
    openFirstImage(event.dataTransfer.files);
  });
}

async function showModel() {
  try {
    const health = await (await fetch('api/health')).json();
    const model = health.model;
    state.holeThreshold = health.hole_threshold;
    const menu = $('method');
    menu.replaceChildren(...health.methods.map((name) => new Option(METHOD_LABELS[name] || name, name)));
    $('model-info').textContent = `model: ${model.train_size} px training images` +
        (model.step == null ? '' : `, step ${model.step}`);
  } catch (error) {
    $('model-info').textContent = 'server not reachable';
  }
}

function main() {
  $('file').addEventListener('change', (event) => {
    openFirstImage(event.target.files);
    event.target.value = '';  // Opening the same file again still fires `change`.
  });
  $('mask-file').addEventListener('change', (event) => {
    if (event.target.files[0]) openMask(event.target.files[0]);
    event.target.value = '';
  });
  $('brush').addEventListener('input', (event) => setBrush(event.target.value));
  $('eraser').addEventListener('click', toggleEraser);
  $('undo').addEventListener('click', undo);
  $('redo').addEventListener('click', redo);
  $('clear').addEventListener('click', clearMask);
  $('repair').addEventListener('click', repair);
  $('again').addEventListener('click', repairAgain);
  $('compare').addEventListener('input', showSplit);
  canvas.addEventListener('pointerdown', onPointerDown);
  canvas.addEventListener('pointermove', onPointerMove);
  canvas.addEventListener('pointerup', onPointerUp);
  canvas.addEventListener('pointercancel', onPointerUp);
  canvas.addEventListener('pointerleave', () => { $('cursor').hidden = true; });
  document.addEventListener('keydown', onKey);
  watchDrops();
  setBrush(brushSize());
  showSplit();
  updateButtons();
  showModel();
}

main();
