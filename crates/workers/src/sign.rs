//! Signatures of outbound requests: Standard Webhooks (generic webhooks), DingTalk and Feishu
//! robots. Each is HMAC-SHA256, base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<Vec<u8>, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| format!("HMAC key: {e}"))?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The key of a Standard Webhooks secret: the base64 after `whsec_`.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.trim().strip_prefix("whsec_").ok_or("a webhook secret starts with whsec_")?;
    STANDARD.decode(encoded).map_err(|e| format!("the webhook secret is not base64 after whsec_: {e}"))
}

/// `webhook-signature` of Standard Webhooks: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")).
pub fn standard_webhook(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let mut message = Vec::with_capacity(id.len() + body.len() + 24);
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    Ok(format!("v1,{}", STANDARD.encode(hmac_sha256(key, &message)?)))
}

/// DingTalk's `sign` (before url-encoding): base64(HMAC-SHA256(secret, timestamp + "\n" + secret)),
/// the timestamp in milliseconds.
pub fn dingtalk(secret: &str, timestamp_ms: i64) -> Result<String, String> {
    let text = format!("{timestamp_ms}\n{secret}");
    Ok(STANDARD.encode(hmac_sha256(secret.as_bytes(), text.as_bytes())?))
}

/// DingTalk's robot URL with `timestamp` and the url-encoded `sign` appended.
pub fn dingtalk_url(url: &str, secret: &str, timestamp_ms: i64) -> Result<String, String> {
    let sign = dingtalk(secret, timestamp_ms)?;
    let encoded: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    let joiner = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{joiner}timestamp={timestamp_ms}&sign={encoded}"))
}

/// Feishu's `sign`: base64(HMAC-SHA256 with the key timestamp + "\n" + secret over an empty
/// message), the timestamp in seconds.
pub fn feishu(secret: &str, timestamp_secs: i64) -> Result<String, String> {
    let key = format!("{timestamp_secs}\n{secret}");
    Ok(STANDARD.encode(hmac_sha256(key.as_bytes(), b"")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The expected values were computed apart from this code (Python's hmac and base64), and
    // the Standard Webhooks one is the example of the specification's test suite.

    #[test]
    fn standard_webhooks_example() {
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard_webhook(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig.unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(webhook_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }

    #[test]
    fn dingtalk_example() {
        assert_eq!(
            dingtalk("SECabcdef0123456789", 1700000000000).unwrap(),
            "dV0RXHUD72d0VKcnHrBhJ9jhSbDS3HUiduucxO+izso="
        );
        assert_eq!(
            dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=t", "SECabcdef0123456789", 1700000000000)
                .unwrap(),
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign=dV0RXHUD72d0VKcnHrBhJ9jhSbDS3HUiduucxO%2Bizso%3D"
        );
    }

    #[test]
    fn feishu_example() {
        assert_eq!(feishu("feishu-secret-123", 1700000000).unwrap(), "wAKC6MXbPqtffyEjIIFCeFvDIz3W7u9+zZzoj6JvcJE=");
    }
}
