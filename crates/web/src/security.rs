//! Secrets and defences: random tokens, hashing, passwords, security headers, sign-in limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

/// `bytes` random bytes as hex.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// SHA-256 as hex: how session and API tokens are stored (a stolen database holds no usable
/// token; they are long and random, so a fast hash suffices).
pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// An argon2id hash of a password (PHC string). CPU-heavy: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("the system's random source failed: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether a password matches its stored hash. CPU-heavy: call from a blocking task.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A readable generated password: 16 characters from an alphabet without look-alikes.
pub fn generate_password() -> Result<String, String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(|e| format!("the system's random source failed: {e}"))?;
    Ok(buf.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect())
}

/// The Content-Security-Policy of every response: nothing from elsewhere, no inline script or
/// style, no framing. Everything a visitor typed is rendered as text besides.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(headers, HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()");
    response
}

/// Failed sign-ins per key (a user name, a client address): after [`LoginLimiter::MAX_FAILURES`]
/// within [`LoginLimiter::WINDOW`], further attempts are refused until the window has passed.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub const MAX_FAILURES: u32 = 5;
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// Keys remembered at most.
    pub const MAX_KEYS: usize = 100_000;

    /// Seconds to wait before trying again, when the key is locked out.
    pub fn locked(&self, key: &str) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let (count, since) = failures.get(key)?;
        let elapsed = since.elapsed();
        (*count >= Self::MAX_FAILURES && elapsed < Self::WINDOW).then(|| (Self::WINDOW - elapsed).as_secs().max(1))
    }

    pub fn failed(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() >= Self::MAX_KEYS {
                failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
                if failures.len() >= Self::MAX_KEYS && !failures.contains_key(key) {
                    // Memory stays bounded under a flood of names; keys already counted still lock.
                    return;
                }
            }
            let entry = failures.entry(key.to_string()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= Self::WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("正确的密码").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("正确的密码", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn limiter_locks_after_repeated_failures() {
        let limiter = LoginLimiter::default();
        for _ in 0..LoginLimiter::MAX_FAILURES {
            assert!(limiter.locked("u").is_none());
            limiter.failed("u");
        }
        assert!(limiter.locked("u").is_some());
        assert!(limiter.locked("other").is_none());
        limiter.succeeded("u");
        assert!(limiter.locked("u").is_none());
    }
}

/// Masks Chinese mobile numbers in a log line (`15804892563` → `158****2563`, also written with
/// `+86`/`86`): logs are read by more people than the console, and a mobile is personal data.
/// Runs of digits longer than a mobile (ids, timestamps) are left alone.
pub fn mask_mobiles(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &text[start..i];
        let mobile_at = match run.len() {
            11 => Some(start),
            13 if run.starts_with("86") => Some(start + 2),
            _ => None,
        };
        if let Some(m) = mobile_at
            && bytes[m] == b'1'
            && (b'3'..=b'9').contains(&bytes[m + 1])
        {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..m + 3]);
            o.push_str("****");
            copied = m + 7;
        }
    }
    match out {
        None => std::borrow::Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            std::borrow::Cow::Owned(o)
        }
    }
}

/// A log writer that masks mobiles on their way out (every event, whoever logs it).
pub struct MaskingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for MaskingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(mask_mobiles(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod masking_tests {
    use super::mask_mobiles;

    #[test]
    fn mobiles_are_masked_and_other_numbers_kept() {
        assert_eq!(mask_mobiles("call 15804892563 now"), "call 158****2563 now");
        assert_eq!(mask_mobiles("+8613812345678,13900001111"), "+86138****5678,139****1111");
        assert_eq!(mask_mobiles("id 1854094590123 and 12345678901"), "id 1854094590123 and 12345678901");
        assert_eq!(mask_mobiles("01000000013100635537156211197954"), "01000000013100635537156211197954");
        assert_eq!(mask_mobiles("手机号：13355556666。"), "手机号：133****6666。");
        assert!(matches!(mask_mobiles("nothing here"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn the_log_writer_masks_what_passes_through_it() {
        use std::io::Write;
        let mut writer = super::MaskingWriter(Vec::new());
        writer.write_all("INFO push from 13912345678 kept\n".as_bytes()).unwrap();
        writer.write_all(&[0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(writer.0, [&b"INFO push from 139****5678 kept\n"[..], &[0xff, 0xfe, b'\n']].concat());
    }
}
