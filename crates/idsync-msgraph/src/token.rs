//! Client-credentials tokens: requested, cached, renewed five minutes before they expire; a
//! token request that meets a transport failure, a 429 or a 5xx is sent again.

use crate::{retry_after, token_roles, CachedToken, Credential, GraphClient, GraphError};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl GraphClient {
    pub(crate) async fn cached_token(&self, force: bool) -> Result<CachedToken, GraphError> {
        let mut guard = self.token.lock().await;
        let now = self.clock.now_ms();
        if let Some(t) = guard.as_ref() {
            if !force && t.expires_ms - now > 5 * 60 * 1000 {
                return Ok(t.clone());
            }
        }
        let url = self.token_url();
        let transport = |message: String| GraphError::Transport {
            url: url.clone(),
            message,
        };
        let mut attempt = 0u32;
        let (status, bytes) = loop {
            // A fresh form each time: a certificate's client assertion is good for one request.
            let body = self.token_form(&url, self.clock.now_ms())?;
            let sent = self
                .http
                .post(&url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await;
            let (failure, wait) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let wait = retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(b) if !(status == 429 || status >= 500) => break (status, b),
                        Ok(b) if attempt >= self.cfg.max_retries => break (status, b),
                        Ok(_) => (format!("the token endpoint answered {status}"), wait),
                        Err(e) => (e.to_string(), None),
                    }
                }
                Err(e) if e.is_builder() => return Err(transport(e.to_string())),
                Err(e) => (e.to_string(), None),
            };
            if attempt >= self.cfg.max_retries {
                return Err(transport(failure));
            }
            attempt += 1;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(url, error = %failure, attempt, "graph: retrying the token request");
            let wait = wait.unwrap_or_else(|| self.backoff(attempt));
            tokio::time::sleep(wait.min(Duration::from_secs(300))).await;
        };
        let auth_err = |message: String| GraphError::Auth {
            tenant: self.cfg.tenant.clone(),
            message,
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| GraphError::Invalid {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if !(200..300).contains(&status) {
            let code = v.get("error").and_then(Value::as_str).unwrap_or("error");
            let desc = v
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("no description");
            return Err(auth_err(format!("{code}: {desc}")));
        }
        let Some(value) = v.get("access_token").and_then(Value::as_str) else {
            return Err(auth_err(
                "the token endpoint answered without access_token".into(),
            ));
        };
        let expires_in = v.get("expires_in").and_then(Value::as_i64).unwrap_or(3599);
        self.counters.tokens.fetch_add(1, Ordering::Relaxed);
        let t = CachedToken {
            roles: token_roles(value),
            value: value.to_string(),
            expires_ms: now + expires_in * 1000,
        };
        *guard = Some(t.clone());
        Ok(t)
    }

    /// The token request's form: the grant, the scope and the credential.
    fn token_form(&self, url: &str, now_ms: i64) -> Result<String, GraphError> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.cfg.client_id.clone()),
            ("scope", self.token_scope()),
        ];
        match &self.cfg.credential {
            Credential::Secret(s) => form.push(("client_secret", s.clone())),
            Credential::Certificate(c) => {
                let jti = uuid::Uuid::new_v4().to_string();
                let assertion = c
                    .assertion(&self.cfg.client_id, url, now_ms / 1000, &jti)
                    .map_err(|e| GraphError::Auth {
                        tenant: self.cfg.tenant.clone(),
                        message: e.to_string(),
                    })?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &form {
            ser.append_pair(k, v);
        }
        Ok(ser.finish())
    }
}
