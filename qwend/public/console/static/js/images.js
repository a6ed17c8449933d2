// Images for a chat turn: decoded and scaled down in the browser to the server's
// maximum side (GET /api/info image_max_side), then sent as JPEG data URLs.

export async function downscale(file, maxSide) {
  if (!file.type.startsWith("image/")) throw new Error(`${file.name || "file"} is not an image`);
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; // transparent areas become white rather than black in JPEG
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return { url: canvas.toDataURL("image/jpeg", 0.9), width, height, name: file.name || "image" };
}

export function imagesFrom(dataTransfer) {
  const files = [];
  for (const item of dataTransfer?.items ?? []) {
    if (item.kind === "file" && item.type.startsWith("image/")) {
      const file = item.getAsFile();
      if (file) files.push(file);
    }
  }
  return files;
}
