// A kohya dataset folder as the browser hands it over (a dropped directory or a directory picker), cut into
// the uploads ESD's dataset flow takes: one `POST /datasets` per `<repeats>_<concept>` folder and ≤ 100 files.
// The rules are those of the SDK's `client/datasets.py`, so a folder uploads the same from either.

const KOHYA = /^\d+_.+/;
const IMAGE = /\.(png|jpe?g|webp|bmp)$/i;
const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
export const BATCH = 100;  // ESD accepts at most 100 files per POST /datasets

// Every file under the dropped items, as {path: "root/10_cat/a.png", file}.
export async function filesFromDrop(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const found = [];
  for (const entry of entries) await walk(entry, "", found);
  return found;
}

async function walk(entry, parent, found) {
  const path = parent ? `${parent}/${entry.name}` : entry.name;
  if (entry.isFile) {
    found.push({ path, file: await new Promise((resolve, reject) => entry.file(resolve, reject)) });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  for (;;) {  // readEntries answers in batches until an empty one
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const child of batch) await walk(child, path, found);
  }
}

export function filesFromPicker(input) {
  return [...input.files].map((file) => ({ path: file.webkitRelativePath || file.name, file }));
}

// {name, folders: [{prefix, files: [File]}], images, captions} or an Error naming what is wrong with the folder.
export function planUpload(found) {
  const folders = new Map();
  let root = null;
  for (const { path, file } of found) {
    const parts = path.split("/").filter(Boolean);
    if (parts.some((part) => part.startsWith("."))) continue;  // .DS_Store, .git and the like
    root = root ?? parts[0];
    // The dropped folder is a kohya folder itself (root/file), or holds them (root/10_cat/file).
    const prefix = parts.length === 2 && KOHYA.test(parts[0]) ? parts[0]
      : parts.length === 3 && KOHYA.test(parts[1]) ? parts[1] : null;
    if (!prefix) continue;
    if (!folders.has(prefix)) folders.set(prefix, []);
    folders.get(prefix).push(file);
  }
  if (!folders.size) {
    throw new Error(`folder: ${root ?? "the folder"} has no kohya folder named <repeats>_<concept> (e.g. 10_cat) with images`);
  }
  const planned = [...folders].sort(([a], [b]) => a.localeCompare(b)).map(([prefix, files]) => {
    if (!files.some((file) => IMAGE.test(file.name))) throw new Error(`folder: ${prefix} holds no images (.png, .jpg, .webp, .bmp)`);
    return { prefix, files: files.sort((a, b) => a.name.localeCompare(b.name)) };
  });
  const all = planned.flatMap((folder) => folder.files);
  const images = all.filter((file) => IMAGE.test(file.name)).length;
  return { name: datasetName(root), folders: planned, images, captions: all.length - images };
}

// A valid dataset name from a folder name: `10_my cat` -> `my_cat` (ESD: letter first, at most 20 characters).
export function datasetName(folder) {
  const base = KOHYA.test(folder || "") ? folder.split("_").slice(1).join("_") : folder || "";
  return base.replace(/[^A-Za-z0-9_-]/g, "_").replace(/^[0-9_-]+/, "").slice(0, 20);
}

export function checkName(name) {
  if (!NAME.test(name) || name.length > 20) {
    throw new Error(`dataset_name: '${name}' must start with a letter, hold only letters, digits, _ or -, and be at most 20 characters`);
  }
}

export function fileType(file) {
  return IMAGE.test(file.name) ? "image" : "text";
}

export function chunks(files) {
  const cut = [];
  for (let i = 0; i < files.length; i += BATCH) cut.push(files.slice(i, i + BATCH));
  return cut;
}
