// Videos: upload a file (POST /v1/videos/encode, with upload progress), follow each encode
// job's progress, and play or download the result. A <video> element cannot send the bearer
// header, so the bytes are fetched with it and played from a blob: URL.

import { html, useState } from "../lib.js";
import { get, upload, blobUrl } from "../api.js";
import { useLoad, useLive, LiveBadge, ErrorBox, Page, Table, Status, Progress, Field, ago, short } from "../ui.js";

function UploadForm({ done }) {
  const [file, setFile] = useState(null);
  const [quality, setQuality] = useState("720p");
  const [format, setFormat] = useState("mp4");
  const [sent, setSent] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    if (!file) return setError({ message: "choose a file", field: "video" });
    setError(null);
    const form = new FormData();
    form.append("quality", quality);
    form.append("format", format);
    form.append("video", file, file.name);
    try {
      await upload("/v1/videos/encode", form, setSent);
      setSent(null);
      done();
    } catch (err) {
      setError(err);
      setSent(null);
    }
  };
  return html`<form class="form panel" onSubmit=${submit} data-testid="video-upload">
    <${Field} label="video file"><input type="file" accept="video/*" onChange=${(e) => setFile(e.target.files[0])} data-testid="video-file" /></${Field}>
    <${Field} label="quality"><select value=${quality} onChange=${(e) => setQuality(e.target.value)}>
      ${["360p", "480p", "720p", "1080p"].map((q) => html`<option>${q}</option>`)}</select></${Field}>
    <${Field} label="format"><select value=${format} onChange=${(e) => setFormat(e.target.value)}>
      ${["mp4", "webm"].map((f) => html`<option>${f}</option>`)}</select></${Field}>
    <button type="submit" data-testid="video-submit">Upload and encode</button>
    ${sent !== null && html`<progress max="1" value=${sent} aria-label="upload"></progress>`}
    <${ErrorBox} error=${error} />
  </form>`;
}

function Player({ jobId }) {
  const [url, setUrl] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      setUrl(await blobUrl(`/v1/videos/${jobId}/download`));
    } catch (err) {
      setError(err);
    }
  };
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!url) return html`<button onClick=${load} data-testid="video-play">Play / download</button>`;
  return html`<span class="player"><video src=${url} controls data-testid="video-player"></video>
    <a href=${url} download=${`${jobId}.video`}>download</a></span>`;
}

export function Videos() {
  const list = useLoad(() => get("/v1/jobs", { definitionKey: "encode.video", limit: 25 }), []);
  const onJob = (ev) => {
    if (!list.data) return;
    if (!list.data.items.some((j) => j.id === ev.id)) return;
    list.setData({ ...list.data, items: list.data.items.map((j) => (j.id === ev.id ? { ...j, status: ev.status, progress: ev.progress ?? j.progress } : j)) });
  };
  const live = useLive({}, onJob, list.reload);
  return html`<${Page} title="Videos" right=${html`<${LiveBadge} state=${live} />`}>
    <${UploadForm} done=${list.reload} />
    <${ErrorBox} error=${list.error} />
    <${Table} testid="videos-table" rows=${list.data && list.data.items} rowKey=${(j) => j.id}
      empty="No videos yet." columns=${[
        { label: "job", cell: (j) => html`<a href=${`#/jobs/${j.id}`}>${short(j.id)}</a>` },
        { label: "status", cell: (j) => html`<${Status} status=${j.status} />` },
        { label: "progress", cell: (j) => html`<${Progress} progress=${j.progress} status=${j.status} />` },
        { label: "quality", cell: (j) => (j.params && j.params.quality) || "" },
        { label: "created", cell: (j) => ago(j.createdAt) },
        { label: "", cell: (j) => (j.status === "succeeded" ? html`<${Player} jobId=${j.id} />` : "") },
      ]} />
  </${Page}>`;
}
