//! `[store] secret_key` and `previous_secret_keys`: the keys that seal what the store keeps.

use super::Checker;
use crate::SecretKey;
use toml_edit::{Item, TableLike};

impl Checker<'_> {
    /// The current key and the earlier ones; every problem is reported, never a key's value.
    pub(super) fn store_keys(&mut self, t: &dyn TableLike) -> (Option<SecretKey>, Vec<SecretKey>) {
        let span = t.get("secret_key").and_then(Item::span);
        let current =
            self.string(t, "secret_key", "store")
                .and_then(|text| match SecretKey::parse(&text) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        self.err(&span, "store.secret_key", e);
                        None
                    }
                });
        let mut previous = Vec::new();
        for (i, (text, span)) in self
            .str_array(t, "previous_secret_keys", "store")
            .into_iter()
            .enumerate()
        {
            let key = format!("store.previous_secret_keys[{i}]");
            let Some(text) = self.interpolate(&text, &span, &key) else {
                continue;
            };
            match SecretKey::parse(&text) {
                Ok(k) => previous.push(k),
                Err(e) => self.err(&span, &key, e),
            }
        }
        if current.is_none() && t.get("secret_key").is_none() && !previous.is_empty() {
            self.err(
                &t.get("previous_secret_keys").and_then(Item::span),
                "store.secret_key",
                "previous_secret_keys needs secret_key: the key that seals from now on",
            );
        }
        (current, previous)
    }
}
