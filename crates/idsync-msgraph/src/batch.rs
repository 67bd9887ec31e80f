//! JSON `$batch` of GETs.

use crate::{GraphClient, GraphError};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl GraphClient {
    /// GET many relative URLs through `$batch` (20 per request). Each answer is the body or
    /// the error of that one request; throttled ones are retried after their Retry-After, and
    /// those still throttled after every retry are fetched on their own.
    pub async fn batch_get(
        &self,
        urls: &[String],
    ) -> Result<Vec<Result<Value, GraphError>>, GraphError> {
        let mut results: Vec<Option<Result<Value, GraphError>>> =
            (0..urls.len()).map(|_| None).collect();
        let batch_url = self.url("$batch");
        for chunk_start in (0..urls.len()).step_by(20) {
            let mut pending: Vec<usize> =
                (chunk_start..(chunk_start + 20).min(urls.len())).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let requests: Vec<Value> = pending
                    .iter()
                    .map(|i| json!({"id": i.to_string(), "method": "GET", "url": urls[*i]}))
                    .collect();
                // A batch of GETs may be sent again whatever happened to the last one.
                let answer = self
                    .send_retrying(
                        reqwest::Method::POST,
                        &batch_url,
                        Some(&json!({"requests": requests})),
                        &[],
                        true,
                    )
                    .await?;
                let Some(responses) = answer.get("responses").and_then(Value::as_array) else {
                    return Err(GraphError::Invalid {
                        url: batch_url,
                        message: "a batch answer without responses".into(),
                    });
                };
                let mut again = Vec::new();
                let mut wait = Duration::ZERO;
                for r in responses {
                    let Some(i) = r
                        .get("id")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    if i >= urls.len() {
                        continue;
                    }
                    let status = r.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                    if let Some(u) = r
                        .pointer("/headers/x-ms-resource-unit")
                        .and_then(Value::as_str)
                        .and_then(|v| v.parse::<u64>().ok())
                    {
                        self.counters.units.fetch_add(u, Ordering::Relaxed);
                    }
                    if matches!(status, 429 | 503 | 504) {
                        if status == 429 {
                            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        let ra = r
                            .pointer("/headers/retry-after")
                            .or_else(|| r.pointer("/headers/Retry-After"))
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse::<u64>().ok())
                            .map(Duration::from_secs);
                        wait = wait.max(ra.unwrap_or_else(|| self.backoff(attempt + 1)));
                        again.push(i);
                        continue;
                    }
                    let body = r.get("body").cloned().unwrap_or(Value::Null);
                    let full = self.url(&urls[i]);
                    results[i] = Some(if (200..300).contains(&status) {
                        Ok(body)
                    } else {
                        let code = body
                            .pointer("/error/code")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let message = body
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        Err(self.classify(status, code, message, &full).await)
                    });
                }
                // Requests the batch answer left out are asked again.
                for i in &pending {
                    if results[*i].is_none() && !again.contains(i) {
                        again.push(*i);
                    }
                }
                if !again.is_empty() {
                    attempt += 1;
                    if attempt > self.cfg.max_retries {
                        // Still throttled (or left out) after every retry: each is asked for
                        // on its own (a plain GET, with its own retries); only that failing too
                        // fails the request.
                        tracing::debug!(
                            requests = again.len(),
                            attempts = attempt,
                            "graph: batched requests still throttled, fetching them one by one"
                        );
                        for i in again {
                            results[i] = Some(self.get(&self.url(&urls[i]), &[]).await);
                        }
                        break;
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
                pending = again;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(GraphError::Invalid {
                        url: batch_url.clone(),
                        message: "no answer".into(),
                    })
                })
            })
            .collect())
    }
}
