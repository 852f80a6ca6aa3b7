//! A tenant's channel settings: how its email and SMS go out (sealed, as
//! they hold the provider's passwords and tokens) and the webhook key that
//! names the channel in its providers' callback URLs.

use super::{channel_str, parse_channel, ChannelConfig};
use crate::engine::write_db;
use crate::secrets::{channel_context, Keyring};
use crate::sql::{q, Db, Row};
use crate::StoreError;
use bos_core::nudge::Channel;
use bos_core::Millis;
use uuid::Uuid;

/// 128 random bits from the operating system's CSPRNG, hex: a channel's
/// webhook key. (A v4 UUID fixes six of its bits, leaving 122.)
fn token() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    format!("{:032x}", u128::from_be_bytes(b))
}

/// A channel's settings and webhook key; the development sink (and no
/// key) when never saved.
pub(crate) async fn load_channel<D: Db>(
    db: &mut D,
    keys: &Keyring,
    org: Uuid,
    channel: Channel,
) -> Result<(ChannelConfig, Option<String>), StoreError> {
    let r = db
        .opt(
            q("select config, hook_key from channel_settings where org_id = $1 and channel = $2")
                .bind(org)
                .bind(channel_str(channel)),
        )
        .await?;
    Ok(match r {
        Some(r) => (
            open_channel_config(keys, org, channel, &r.text("config")?)?,
            Some(r.text("hook_key")?),
        ),
        None => (ChannelConfig::Dev, None),
    })
}

/// A channel's stored settings, opened (they hold its secrets, sealed).
/// A key that does not open them is an error, never the development sink:
/// sends must not quietly go nowhere.
pub(crate) fn open_channel_config(
    keys: &Keyring,
    org: Uuid,
    channel: Channel,
    stored: &str,
) -> Result<ChannelConfig, StoreError> {
    let json = keys.open(&channel_context(org, channel_str(channel)), stored)?;
    Ok(serde_json::from_str(&json).unwrap_or(ChannelConfig::Dev))
}

impl crate::Store {
    /// Sets how a tenant's channel sends (the settings page validates).
    /// Keeps the webhook key of the channel, making one on first save.
    pub async fn put_channel_config(
        &self,
        org: Uuid,
        channel: Channel,
        config: &ChannelConfig,
        now: Millis,
    ) -> Result<String, StoreError> {
        let cfg = serde_json::to_string(config).map_err(|e| StoreError::Other(e.to_string()))?;
        // Sealed whole: the JSON holds the channel's passwords and tokens.
        let cfg = self
            .keyring()
            .seal(&channel_context(org, channel_str(channel)), &cfg);
        let provider = config.provider();
        write_db!(self, |db| async move {
            let existing = db
                .opt(
                    q("select hook_key from channel_settings where org_id = $1 and channel = $2")
                        .bind(org)
                        .bind(channel_str(channel)),
                )
                .await?;
            let hook = match existing {
                Some(r) => r.text("hook_key")?,
                None => token(),
            };
            db.exec(
                q("insert into channel_settings (org_id, channel, provider, config, hook_key, updated_at) \
                   values ($1, $2, $3, $4, $5, $6) on conflict (org_id, channel) do update set \
                   provider = excluded.provider, config = excluded.config, updated_at = excluded.updated_at")
                .bind(org)
                .bind(channel_str(channel))
                .bind(provider)
                .bind(cfg)
                .bind(hook.as_str())
                .bind(now),
            )
            .await?;
            Ok(hook)
        })
    }

    /// The channel settings a sender needs (the engine builds senders).
    pub async fn channel_config(
        &self,
        org: Uuid,
        channel: Channel,
    ) -> Result<ChannelConfig, StoreError> {
        let keys = self.keyring();
        write_db!(self, |db| async move {
            Ok(load_channel(db, &keys, org, channel).await?.0)
        })
    }

    /// Which tenant and channel a provider webhook's hook key names.
    pub async fn channel_by_hook(
        &self,
        hook_key: String,
    ) -> Result<Option<(Uuid, Channel, ChannelConfig)>, StoreError> {
        let rows = crate::sql::read_rows(
            self,
            q("select org_id, channel, config from channel_settings where hook_key = $1")
                .bind(hook_key.as_str()),
        )
        .await?;
        let keys = self.keyring();
        rows.first()
            .map(|r: &Row| {
                let (org, channel) = (r.uuid("org_id")?, parse_channel(&r.text("channel")?)?);
                Ok((
                    org,
                    channel,
                    open_channel_config(&keys, org, channel, &r.text("config")?)?,
                ))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    /// Every one of the 128 bits varies across keys: none is fixed, as a
    /// v4 UUID's version and variant bits are. (A given bit staying the
    /// same across 256 random keys has odds of 2^-255.)
    #[test]
    fn webhook_keys_carry_128_random_bits() {
        let keys: Vec<u128> = (0..256)
            .map(|_| {
                let t = super::token();
                assert_eq!(t.len(), 32, "{t}");
                u128::from_str_radix(&t, 16).unwrap()
            })
            .collect();
        let ones = keys.iter().fold(0u128, |acc, k| acc | k);
        let zeros = keys.iter().fold(0u128, |acc, k| acc | !k);
        assert_eq!(ones, u128::MAX, "bits never set: {:032x}", !ones);
        assert_eq!(zeros, u128::MAX, "bits never clear: {:032x}", !zeros);
    }
}
