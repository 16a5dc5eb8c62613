// Training: datasets (upload a kohya folder, see its problems), a LoRA training's settings, the trainings with
// their status, and one training followed live (`#/training?id=<id>`: progress, loss chart, stop, try it).
import { h } from "../ui.js";
import { datasetsPanel } from "./training/datasets.js";
import { trainingForm } from "./training/form.js";
import { trainingDetail, trainingsPanel } from "./training/runs.js";

export async function render(main, ctx) {
  main.append(h("h1", {}, "Training"));
  if (ctx.params.id) {
    const detail = trainingDetail(ctx, ctx.params.id);
    main.append(detail.element);
    return detail.stop;
  }
  const trainings = trainingsPanel(ctx);
  const form = trainingForm(ctx, { onStarted: (id) => ctx.navigate("training", { id }) });
  const datasets = datasetsPanel(ctx, { onUse: (name) => form.useDataset(name) });
  main.append(trainings.element, form.element, datasets.element);
  await Promise.all([trainings.refresh(), datasets.refresh()]);
  return null;
}
