//! Credentials. `Debug` and `Display` never show secrets.

use std::fmt;

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// An API token: header `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`.
    Token {
        /// `USER@REALM!TOKENID`, e.g. `operator@pve!k8s`.
        token_id: String,
        /// The token secret (a UUID).
        secret: String,
    },
    /// User name and password: the client logs in at `POST /access/ticket` and renews the
    /// ticket before its 2 h lifetime ends.
    Password {
        /// `USER@REALM`, e.g. `root@pam`.
        username: String,
        /// The password.
        password: String,
    },
}

impl Auth {
    /// The user the credentials act as (`user@realm` or `user@realm!token`).
    pub fn principal(&self) -> &str {
        match self {
            Auth::Token { token_id, .. } => token_id,
            Auth::Password { username, .. } => username,
        }
    }

    /// Rejects values that cannot be put into a header or form safely.
    pub(crate) fn validate(&self) -> Result<(), super::Error> {
        let bad = |what: &str| super::Error::Config {
            message: format!("invalid credentials: {what}"),
        };
        match self {
            Auth::Token { token_id, secret } => {
                if !token_id.contains('@') || !token_id.contains('!') {
                    return Err(bad("token_id must look like USER@REALM!TOKENID"));
                }
                if token_id
                    .chars()
                    .chain(secret.chars())
                    .any(|c| c.is_control() || c == ' ')
                {
                    return Err(bad("token id or secret contains whitespace or control characters"));
                }
                if secret.is_empty() {
                    return Err(bad("empty token secret"));
                }
            }
            Auth::Password { username, password } => {
                if !username.contains('@') {
                    return Err(bad("username must look like USER@REALM"));
                }
                if password.is_empty() {
                    return Err(bad("empty password"));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token { token_id, .. } => f
                .debug_struct("Token")
                .field("token_id", token_id)
                .field("secret", &"<redacted>")
                .finish(),
            Auth::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl fmt::Display for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token { token_id, .. } => write!(f, "API token {token_id}"),
            Auth::Password { username, .. } => write!(f, "password of {username}"),
        }
    }
}
