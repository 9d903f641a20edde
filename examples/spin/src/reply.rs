//! The app's responses: built from parts so a stored outcome can be replayed byte for byte.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use spin_sdk::http::FullBody;

pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: Some("application/json".into()),
            headers: Vec::new(),
            body: value.to_string().into_bytes(),
        }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": message }))
    }

    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self {
            status,
            content_type: Some("text/plain".into()),
            headers: Vec::new(),
            body: text.into().into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Header names or values that HTTP cannot carry are dropped rather than failing the whole response:
    /// they can only come from a stored outcome written by another version of this app.
    pub fn into_http(self) -> Response<FullBody<Bytes>> {
        let mut response = Response::new(FullBody::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        let content_type = self.content_type.map(|v| ("content-type".to_owned(), v));
        for (name, value) in content_type.into_iter().chain(self.headers) {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                headers.append(name, value);
            }
        }
        response
    }
}
