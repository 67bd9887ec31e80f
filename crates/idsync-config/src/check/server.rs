//! `[server]`: the listen address, the tokens, and the limits on what a client may hold.

use super::Checker;
use crate::{Secret, ServerConfig};
use std::net::SocketAddr;
use toml_edit::{Item, TableLike};

const KEYS: &[&str] = &[
    "listen",
    "admin_token",
    "metrics_token",
    "max_connections",
    "header_timeout",
    "idle_timeout",
    "scim_rate",
    "scim_burst",
];

impl Checker<'_> {
    pub(super) fn server(&mut self, root: &dyn TableLike) -> Option<ServerConfig> {
        let path = "server";
        let default = ServerConfig::default();
        let Some(t) = self.section(root, path)? else {
            return Some(default);
        };
        self.keys(t, path, KEYS);
        let listen = match self.string(t, "listen", path) {
            None => default.listen,
            Some(s) => match s.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    let span = t.get("listen").and_then(Item::span);
                    self.err(
                        &span,
                        "server.listen",
                        format!("{s:?} is not an address such as \"127.0.0.1:8080\""),
                    );
                    default.listen
                }
            },
        };
        let admin_token = self.string(t, "admin_token", path).map(Secret::new);
        let metrics_token = self.string(t, "metrics_token", path).map(Secret::new);
        for (key, token) in [
            ("admin_token", &admin_token),
            ("metrics_token", &metrics_token),
        ] {
            if token.as_ref().is_some_and(|s| s.expose().trim().is_empty()) {
                let span = t.get(key).and_then(Item::span);
                self.err(
                    &span,
                    &format!("{path}.{key}"),
                    "is empty: set a token, or leave the key out",
                );
            }
        }
        let max_connections = self
            .int(t, "max_connections", path, 1, 1_000_000)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default.max_connections);
        let header_timeout = self
            .duration(t, "header_timeout", path)
            .unwrap_or(default.header_timeout);
        let idle_timeout = self
            .duration(t, "idle_timeout", path)
            .unwrap_or(default.idle_timeout);
        let scim_rate = self
            .float(t, "scim_rate", path, 0.0, 1_000_000.0)
            .unwrap_or(default.scim_rate);
        let scim_burst = self
            .int(t, "scim_burst", path, 1, 1_000_000)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default.scim_burst);
        Some(ServerConfig {
            listen,
            admin_token,
            metrics_token,
            max_connections,
            header_timeout,
            idle_timeout,
            scim_rate,
            scim_burst,
        })
    }
}
