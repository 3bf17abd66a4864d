//! [`Tls`]: the certificates of a `rediss://` connection, and [`redact_url`], which keeps
//! credentials out of every message.

use std::fmt;

use crate::error::{Error, Result};

/// The certificates of a TLS connection (`rediss://`, `rediss+cluster://`), in PEM: the
/// certificate authority that signed the server's certificate, when it is not one the
/// system trusts, and a client certificate with its key, for servers that ask for one
/// (`tls-auth-clients yes`).
///
/// [`RedisQueueBackend::new`](crate::RedisQueueBackend::new) reads them from the files
/// that `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE` name;
/// [`RedisQueueBackend::with_tls`](crate::RedisQueueBackend::with_tls) takes them from the
/// caller. Its `Debug` output shows which are set, never the key.
///
/// ```
/// let tls = redisq::Tls::default().with_root_ca(b"-----BEGIN CERTIFICATE-----\n".to_vec());
/// assert!(format!("{tls:?}").contains("root_ca: true"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tls {
    root_ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    /// Trusts the certificate authority `pem` (instead of the system's).
    #[must_use]
    pub fn with_root_ca(mut self, pem: Vec<u8>) -> Tls {
        self.root_ca = Some(pem);
        self
    }

    /// Presents the client certificate `cert_pem`, with its private key `key_pem`.
    #[must_use]
    pub fn with_client_certificate(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Tls {
        self.client = Some((cert_pem, key_pem));
        self
    }

    /// The certificates the files named by `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE` and
    /// `REDIS_TLS_KEY_FILE` hold; `None` when none of them is set.
    ///
    /// # Errors
    /// [`Error::Config`] when a file cannot be read, or only one of the client
    /// certificate and its key is named.
    pub fn from_env() -> Result<Option<Tls>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let read = |name: &str| -> Result<Option<Vec<u8>>> {
            var(name)
                .map(|path| {
                    std::fs::read(&path)
                        .map_err(|e| Error::Config(format!("{name} `{path}` cannot be read: {e}")))
                })
                .transpose()
        };
        let root_ca = read("REDIS_TLS_CA_FILE")?;
        let client = match (read("REDIS_TLS_CERT_FILE")?, read("REDIS_TLS_KEY_FILE")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together".to_owned(),
                ))
            }
        };
        if root_ca.is_none() && client.is_none() {
            return Ok(None);
        }
        Ok(Some(Tls { root_ca, client }))
    }

    /// The same, as redis-rs takes them.
    pub(crate) fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.root_ca.clone(),
        }
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("root_ca", &self.root_ca.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

/// `url` with its password replaced by `***`, in the user part and in a `pass` or
/// `password` query parameter (`redis+unix:///run/redis.sock?pass=…`): what redisq prints
/// of a Redis URL, in messages, errors and `Debug` output. Works for every form redisq
/// takes, cluster URLs with several hosts included; what is not a URL at all is not
/// printed.
///
/// ```
/// assert_eq!(
///     redisq::redact_url("redis://app:secret@127.0.0.1:6379/0"),
///     "redis://app:***@127.0.0.1:6379/0"
/// );
/// assert_eq!(
///     redisq::redact_url("rediss+cluster://:s3@a:7000,b:7001"),
///     "rediss+cluster://:***@a:7000,b:7001"
/// );
/// assert_eq!(
///     redisq::redact_url("redis+unix:///tmp/r.sock?db=1&pass=x"),
///     "redis+unix:///tmp/r.sock?db=1&pass=***"
/// );
/// assert_eq!(redisq::redact_url("redis://me@h"), "redis://me@h");
/// assert_eq!(redisq::redact_url("not a url :secret@"), "(an unparsable URL)");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return "(an unparsable URL)".to_owned();
    };
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let mut redacted = match url[start..authority_end].rfind('@').map(|i| start + i) {
        Some(at) => match url[start..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
            // A user name alone (`redis://app@host`) is no secret.
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    if let Some(query) = redacted.find('?') {
        let (head, tail) = redacted.split_at(query + 1);
        let (query, fragment) = tail.split_at(tail.find('#').unwrap_or(tail.len()));
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key == "pass" || key == "password" => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted = format!("{head}{}{fragment}", pairs.join("&"));
    }
    redacted
}
