// A small SVG line chart of the training loss by step, redrawn as `step` events arrive (no chart library:
// the console loads nothing from outside the package).
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600, HEIGHT = 220, PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export function lossChart() {
  const points = [];  // [step, loss], in step order
  const element = svg("svg", { id: "loss-chart", class: "loss-chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img", "aria-label": "Training loss by step", "data-points": 0 });
  const empty = svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "chart-label" }, "The loss appears with the first steps");
  element.append(empty);

  function draw() {
    element.replaceChildren();
    element.setAttribute("data-points", points.length);
    if (!points.length) { element.append(empty); return; }
    const steps = points.map(([step]) => step), losses = points.map(([, loss]) => loss);
    const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
    const [y0, y1] = [Math.min(...losses), Math.max(...losses)];
    const x = (step) => PAD.left + (x1 === x0 ? 0.5 : (step - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
    const y = (loss) => PAD.top + (y1 === y0 ? 0.5 : (y1 - loss) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);
    const bottom = HEIGHT - PAD.bottom;
    element.append(
      svg("line", { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: "chart-axis" }),
      svg("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: "chart-axis" }),
      svg("text", { x: PAD.left - 6, y: PAD.top + 10, "text-anchor": "end", class: "chart-label" }, format(y1)),
      svg("text", { x: PAD.left - 6, y: bottom, "text-anchor": "end", class: "chart-label" }, format(y0)),
      svg("text", { x: PAD.left, y: HEIGHT - 8, class: "chart-label" }, `step ${x0}`),
      svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 8, "text-anchor": "end", class: "chart-label" }, `step ${x1}`),
      svg("polyline", { class: "chart-line", fill: "none", points: points.map(([s, l]) => `${x(s).toFixed(1)},${y(l).toFixed(1)}`).join(" ") }),
      ...points.map(([s, l]) => svg("circle", { cx: x(s).toFixed(1), cy: y(l).toFixed(1), r: 2.5, class: "chart-point" },
        undefined)),
    );
  }

  return {
    element,
    // One point per step (a replayed event for a step already drawn replaces it).
    add(step, loss) {
      if (!Number.isFinite(step) || !Number.isFinite(loss)) return;
      const at = points.findIndex(([s]) => s >= step);
      if (at >= 0 && points[at][0] === step) points[at] = [step, loss];
      else if (at >= 0) points.splice(at, 0, [step, loss]);
      else points.push([step, loss]);
      draw();
    },
    get count() { return points.length; },
    // What an empty chart says (a training that ended before its events were kept has no points).
    note(text) { empty.textContent = text; },
  };
}

function format(value) {
  return Math.abs(value) >= 100 || value === 0 ? value.toFixed(0) : value.toPrecision(3);
}
