"""Mail: what `mail.send` jobs are built from, one small module per step.

- `config`: the SMTP server (`SmtpServer`, a frozen dataclass built from the settings, so a
  stored credential can stand in for its host and login later) and the attachment limits;
- `addresses`: one address (display name allowed) or a list of them, validated;
- `attachments`: base64 content or a file under MAIL_ATTACHMENT_DIR, decoded under a size cap;
- `templates`: stored templates rendered with Jinja2's sandbox (HTML autoescaped);
- `message`: the `EmailMessage` (multipart as needed), its envelope and its summary.

The SMTP conversation itself is `jobserver.outbound.smtp` (one outbound policy for every
client). Heavy imports (Jinja2, email-validator) happen on first use, never at import.
"""
