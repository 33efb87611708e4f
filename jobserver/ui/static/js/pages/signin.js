// Sign in with an API token (checked with GET /v1/me, kept in sessionStorage only).

import { html, useState } from "../lib.js";
import { signIn } from "../api.js";
import { ErrorBox } from "../ui.js";

export function SignIn({ onSignedIn }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(value);
      onSignedIn();
    } catch (err) {
      setError(err.status === 401 ? { message: "That token was not accepted.", code: err.code } : err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="signin" onSubmit=${submit} data-testid="signin">
    <h1>jobserver</h1>
    <p>Sign in with an API token (<code>jobserver tokens create</code>). It stays in this tab
      only and is forgotten when you sign out or close it.</p>
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="off" value=${value}
      onInput=${(e) => setValue(e.target.value)} data-testid="token" />
    <button type="submit" disabled=${busy} data-testid="sign-in">Sign in</button>
    <${ErrorBox} error=${error} />
  </form>`;
}
