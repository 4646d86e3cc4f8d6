//! Registry authentication challenges (`WWW-Authenticate`, RFC 9110 §11.6.1) and bearer tokens
//! from the token endpoint (distribution's token-auth specification): GET with Basic
//! credentials or anonymously, or an OAuth2 refresh-token grant (POST) for identity tokens.

use super::credentials::Credentials;
use super::retry::Failure;
use serde_json::Value;

/// How a registry asked to be authenticated to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Challenge {
    /// `/v2/` answered without asking.
    #[default]
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value; unknown schemes count as none.
    pub fn parse(header: &str) -> Challenge {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Challenge::Basic;
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::None;
        }
        let params = parse_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        match get("realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: get("service"),
            },
            None => Challenge::None,
        }
    }
}

/// `k="v", k2=v2` pairs, with quoted values that may contain commas.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Fetches a bearer token for `scope` (space-separated `repository:NAME:ACTIONS` items).
pub fn fetch(
    http: &reqwest::blocking::Client,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credentials: &Credentials,
) -> Result<String, Failure> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let request = match credentials {
        Credentials::IdentityToken(refresh) => {
            // OAuth2 refresh grant, as docker and containers/image send it.
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "bootseal"),
                ("access_type", "offline"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let joined = scopes.join(" ");
            if !joined.is_empty() {
                form.push(("scope", &joined));
            }
            http.post(realm).form(&form).send()
        }
        _ => {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(s) = service {
                query.push(("service", s));
            }
            for s in &scopes {
                query.push(("scope", s));
            }
            let mut rb = http.get(realm).query(&query);
            if let Credentials::Basic { user, password } = credentials {
                rb = rb.basic_auth(user, Some(password));
            }
            rb.send()
        }
    };
    let response = request.map_err(|e| {
        Failure::transient(format!("token endpoint {realm}: {}", super::describe(&e)))
    })?;
    let status = response.status();
    let body = response.bytes().map_err(|e| {
        Failure::transient(format!("token endpoint {realm}: {}", super::describe(&e)))
    })?;
    if !status.is_success() {
        let message = format!(
            "token endpoint {realm}: HTTP {status}{}",
            super::error_text(&body)
        );
        return Err(if super::transient_status(status.as_u16()) {
            Failure::transient(message)
        } else {
            Failure::permanent(format!("registry authentication failed: {message}"))
        });
    }
    let json: Value = serde_json::from_slice(&body)
        .map_err(|_| Failure::permanent(format!("token endpoint {realm}: answer is not JSON")))?;
    json.get("token")
        .or_else(|| json.get("access_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Failure::permanent(format!("token endpoint {realm}: answer has no token")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="reg, x",scope="repository:a:pull""#
            ),
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg, x".into())
            }
        );
        assert_eq!(Challenge::parse(r#"Basic realm="test""#), Challenge::Basic);
        assert_eq!(Challenge::parse("Negotiate"), Challenge::None);
        assert_eq!(Challenge::parse("Bearer service=x"), Challenge::None);
    }
}
