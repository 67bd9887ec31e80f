//! Notifications: email through SMTP (lettre) and a JSON webhook, on held runs, failed runs and
//! quarantine. Each attempt is recorded in the store (`notifications`), sent or not; a failure
//! to notify is logged and never fails the run it is about.

use idsync_config::{NotificationsConfig, NotifyEvent};
use idsync_core::error_chain;
use idsync_store::{NotificationRecord, Store};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};

/// Something to tell people.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: NotifyEvent,
    pub flow: String,
    pub run_id: Option<String>,
    /// One line: the email's subject.
    pub subject: String,
    /// What happened and what to do, in words: the email's body.
    pub text: String,
    /// Machine-readable details for the webhook (counts, status, ...).
    pub details: Value,
}

/// Sends notices as configured.
pub struct Notifier {
    cfg: NotificationsConfig,
    http: reqwest::Client,
}

impl Notifier {
    pub fn new(cfg: NotificationsConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .unwrap_or_default();
        Notifier { cfg, http }
    }

    /// Whether anything is configured to receive this event.
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.cfg.events.contains(&event)
            && (!self.cfg.email_to.is_empty() || self.cfg.webhook_url.is_some())
    }

    /// Send a notice on every configured channel and record each attempt.
    pub async fn send(&self, store: &Store, now_ms: i64, notice: &Notice) {
        if !self.wants(notice.event) {
            return;
        }
        let mut attempts = Vec::new();
        if !self.cfg.email_to.is_empty() {
            let result = self.email(notice).await;
            attempts.push(("email", self.cfg.email_to.join(", "), result));
        }
        if let Some(url) = &self.cfg.webhook_url {
            let result = self.webhook(url, now_ms, notice).await;
            // Webhook URLs often carry their secret (Slack's, Teams'): only the origin is shown.
            attempts.push(("webhook", shown_url(url), result));
        }
        for (channel, destination, result) in attempts {
            match &result {
                Ok(()) => tracing::info!(
                    event = notice.event.as_str(),
                    flow = %notice.flow,
                    channel,
                    "notification sent"
                ),
                Err(e) => tracing::warn!(
                    event = notice.event.as_str(),
                    flow = %notice.flow,
                    channel,
                    error = %e,
                    "notification not sent"
                ),
            }
            let record = NotificationRecord {
                at_ms: now_ms,
                event: notice.event.as_str().to_string(),
                flow: notice.flow.clone(),
                run_id: notice.run_id.clone(),
                channel: channel.to_string(),
                destination,
                subject: notice.subject.clone(),
                ok: result.is_ok(),
                error: result.err(),
            };
            if let Err(e) = store.record_notification(&record).await {
                tracing::warn!(error = %e, "cannot record a notification");
            }
        }
    }

    async fn email(&self, notice: &Notice) -> Result<(), String> {
        let (Some(url), Some(from)) = (&self.cfg.smtp_url, &self.cfg.email_from) else {
            return Err("email_to is set without smtp_url and email_from".into());
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("email_from {from:?}: {e}"))?;
        let mut builder = Message::builder()
            .from(from)
            .subject(format!("[idsync] {}", notice.subject));
        for to in &self.cfg.email_to {
            let to: Mailbox = to.parse().map_err(|e| format!("email_to {to:?}: {e}"))?;
            builder = builder.to(to);
        }
        let message = builder
            .body(notice.text.clone())
            .map_err(|e| format!("cannot build the message: {e}"))?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("smtp_url {}: {e}", shown_url(url)))?
            .timeout(Some(self.cfg.timeout));
        if let (Some(user), Some(password)) = (&self.cfg.smtp_username, &self.cfg.smtp_password) {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        transport
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }

    async fn webhook(&self, url: &str, now_ms: i64, notice: &Notice) -> Result<(), String> {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let body = json!({
            "event": notice.event.as_str(),
            "flow": notice.flow,
            "run_id": notice.run_id,
            "subject": notice.subject,
            "text": notice.text,
            "details": notice.details,
            "at": at,
        })
        .to_string();
        let mut rb = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("User-Agent", "idsync");
        if let Some(secret) = &self.cfg.webhook_secret {
            rb = rb.header("X-Idsync-Signature", signature(secret.expose(), &body));
        }
        let shown = shown_url(url);
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {shown}: {}", error_chain(&e.without_url())))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("POST {shown}: HTTP {}", resp.status()))
        }
    }
}

/// A URL as idsync shows it (logs, the notifications it records): scheme, host and port only,
/// since credentials, tokens in the path (Slack's and Teams' webhooks) or the query are secrets.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let origin = format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            );
            let more = (u.path() != "/" && !u.path().is_empty())
                || u.query().is_some()
                || !u.username().is_empty()
                || u.password().is_some();
            if more {
                format!("{origin}/…")
            } else {
                origin
            }
        }
        Err(_) => "(a URL that does not parse)".to_string(),
    }
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, as receivers of signed webhooks check it.
pub fn signature(secret: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_what_may_be_secret() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T0/B0/XXXXSECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_url("http://user:pw@127.0.0.1:8080/hook?token=abc"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(
            shown_url("smtps://mail.example.com:465"),
            "smtps://mail.example.com:465"
        );
        assert_eq!(
            shown_url("smtp://u:secret@mail.example.com:587"),
            "smtp://mail.example.com:587/…"
        );
        assert_eq!(shown_url("not a url"), "(a URL that does not parse)");
    }
}
