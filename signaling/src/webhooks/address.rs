//! Which webhook URLs may be called: `http`/`https` only, and never loopback, private, link-local, shared (CGNAT),
//! unspecified, multicast or cloud-metadata addresses unless the operator allows them (`allow_private_urls`).
//! Checked on the URL when configured and, for host names, on every address DNS returns at send time
//! ([`GuardedResolver`]), so a name cannot resolve its way into the private network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Host names that are internal whatever they resolve to.
const INTERNAL_NAMES: &[&str] = &[
    "localhost",
    "metadata",
    "metadata.google.internal",
    "instance-data",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
    #[error("`{0}`: only http and https URLs are allowed")]
    Scheme(String),
    #[error("`{url}` points at a {what} address; set webhooks.allow_private_urls to allow it")]
    Private { url: String, what: &'static str },
}

/// Why `ip` may not be called, if it may not.
pub fn forbidden_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                // Unique local, which also holds AWS's IPv6 metadata address fd00:ec2::254.
                Some("private")
            } else if first == 0x0064 && v6.segments()[1] == 0xff9b {
                // NAT64 (64:ff9b::/96) can reach any IPv4 address, private ones included.
                Some("NAT64")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16, which holds the cloud metadata address 169.254.169.254.
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("broadcast, multicast or reserved")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (CGNAT)")
    } else if ip == Ipv4Addr::new(192, 0, 0, 192) || (a == 192 && b == 0 && ip.octets()[2] == 0) {
        Some("IETF-reserved")
    } else {
        None
    }
}

/// Checks a configured webhook URL; returns it parsed.
pub fn check_url(text: &str, allow_private: bool) -> Result<Url, UrlError> {
    let url = Url::parse(text).map_err(|_| UrlError::Invalid(text.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme(text.to_string()));
    }
    if allow_private {
        return Ok(url);
    }
    let private = |what| UrlError::Private {
        url: text.to_string(),
        what,
    };
    match url.host() {
        None => Err(UrlError::Invalid(text.to_string())),
        Some(url::Host::Ipv4(ip)) => match forbidden_ip(IpAddr::V4(ip)) {
            Some(what) => Err(private(what)),
            None => Ok(url),
        },
        Some(url::Host::Ipv6(ip)) => match forbidden_ip(IpAddr::V6(ip)) {
            Some(what) => Err(private(what)),
            None => Ok(url),
        },
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if INTERNAL_NAMES.contains(&name.as_str()) || name.ends_with(".localhost") {
                Err(private("internal host name"))
            } else {
                Ok(url)
            }
        }
    }
}

/// A DNS resolver that drops forbidden addresses (and fails when nothing is left).
#[derive(Debug)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| forbidden_ip(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses webhooks may not call ({} found)",
                    all.len()
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "http://127.0.0.1/hook",
            "http://127.9.9.9:8080/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8000/",
            "http://api.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
        ] {
            assert!(
                matches!(check_url(bad, false), Err(UrlError::Private { .. })),
                "{bad} should be refused"
            );
            assert!(
                check_url(bad, true).is_ok(),
                "{bad} allowed when private URLs are"
            );
        }
        for good in [
            "https://hooks.example.com/chorus",
            "http://203.0.113.7:8080/x",
            "https://[2001:db8::1]/",
        ] {
            assert!(check_url(good, false).is_ok(), "{good}");
        }
        assert!(matches!(
            check_url("ftp://example.com/", true),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            check_url("not a url", true),
            Err(UrlError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_resolver_drops_forbidden_addresses() {
        let name: Name = "localhost".parse().expect("name");
        let result = GuardedResolver.resolve(name).await;
        assert!(result.is_err(), "localhost resolves only to loopback");
    }
}
