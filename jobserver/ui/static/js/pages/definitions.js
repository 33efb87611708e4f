// Definitions: every registered job type with its params schema and limits.

import { html, useState } from "../lib.js";
import { get } from "../api.js";
import { useLoad, ErrorBox, Page, Table, Json } from "../ui.js";

export function Definitions() {
  const list = useLoad(() => get("/v1/definitions", { limit: 100 }), []);
  const [open, setOpen] = useState(null);
  const items = list.data && list.data.items;
  const shown = items && items.find((d) => d.ref === open);
  return html`<${Page} title="Definitions">
    <${ErrorBox} error=${list.error} />
    <${Table} testid="definitions-table" rows=${items} rowKey=${(d) => d.ref} columns=${[
      { label: "definition", cell: (d) => html`<button class="link" onClick=${() => setOpen(d.ref)}>${d.ref}</button>` },
      { label: "latest", cell: (d) => (d.latest ? "yes" : "") },
      { label: "attempts", cell: (d) => d.defaultMaxAttempts, cls: "num" },
      { label: "timeout", cell: (d) => (d.timeoutSeconds != null ? `${d.timeoutSeconds} s` : "–"), cls: "num" },
      { label: "concurrency", cell: (d) => d.concurrencyLimit ?? "–", cls: "num" },
      { label: "description", cell: (d) => html`<span class="small">${(d.description || "").split("\n")[0]}</span>` },
    ]} />
    ${shown && html`<div class="panel" data-testid="definition-schema"><h2>${shown.ref}: params schema</h2>
      <${Json} value=${shown.paramsSchema} /></div>`}
  </${Page}>`;
}
