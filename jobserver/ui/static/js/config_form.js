// The create/edit form shared by schedules and saved jobs: name, definition, cron or
// interval, params (JSON). onSave(body) is the API call; an API error shows under the form.

import { html, useState } from "./lib.js";
import { ErrorBox, Field, useJsonField } from "./ui.js";

export function ConfigForm({ initial, onSave, onCancel, needsTrigger, testid }) {
  const start = initial || {};
  const [name, setName] = useState(start.name || "");
  const [key, setKey] = useState(start.definitionKey || "");
  const [cron, setCron] = useState(start.cron || "");
  const [every, setEvery] = useState(start.everySeconds ? String(start.everySeconds) : "");
  const params = useJsonField(JSON.stringify(start.params || {}, null, 2));
  const [error, setError] = useState(null);
  const editing = Boolean(initial);
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    if (params.error) return setError({ message: `params: ${params.error}`, field: "params" });
    const body = { definitionKey: key, params: params.value };
    if (!editing) body.name = name;
    if (cron) body.cron = cron;
    else if (every) body.everySeconds = Number(every);
    else if (editing && !needsTrigger) {
      body.cron = null;
      body.everySeconds = null;
    }
    try {
      await onSave(body);
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="form panel" onSubmit=${save} data-testid=${testid}>
    <h2>${editing ? `Edit ${start.name}` : "New"}</h2>
    ${!editing && html`<${Field} label="name"><input value=${name} onInput=${(e) => setName(e.target.value)} required data-testid="cfg-name" /></${Field}>`}
    <${Field} label="definition"><input value=${key} onInput=${(e) => setKey(e.target.value)} required data-testid="cfg-definition" /></${Field}>
    <${Field} label="cron (e.g. */5 * * * *)"><input value=${cron} onInput=${(e) => setCron(e.target.value)} data-testid="cfg-cron" /></${Field}>
    <${Field} label="or every N seconds"><input type="number" min="1" value=${every} onInput=${(e) => setEvery(e.target.value)} data-testid="cfg-every" /></${Field}>
    <${Field} label="params (JSON)"><textarea rows="4" value=${params.text} onInput=${(e) => params.setText(e.target.value)} data-testid="cfg-params"></textarea></${Field}>
    <button type="submit" data-testid="cfg-save">Save</button>
    <button type="button" class="link" onClick=${onCancel}>Cancel</button>
    <${ErrorBox} error=${error} />
  </form>`;
}
