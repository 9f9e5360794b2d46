//! Outcome classification by autoref specialisation: `(&&&&&Classify(&value)).__vitals_outcome()`
//! picks the most specific impl that applies to the value's type, at compile time.

use super::Outcome;

/// A returned value, to be classified.
#[derive(Debug)]
pub struct Classify<'a, T: ?Sized>(pub &'a T);

/// Values whose status says whether they are a server error: HTTP responses and status
/// codes (behind the `http` and `actix-web` features).
pub trait ServerError {
    /// Whether the value is a 5xx response.
    fn is_server_error(&self) -> bool;
}

/// `Result<R, E>` where `R` has a status: `Err`, or `Ok` with a 5xx status, is an error.
pub trait ResultOfResponse {
    /// The outcome.
    fn __vitals_outcome(&self) -> Outcome;
}
impl<R: ServerError, E> ResultOfResponse for &&&&Classify<'_, Result<R, E>> {
    #[inline]
    fn __vitals_outcome(&self) -> Outcome {
        match self.0 {
            Ok(r) if !r.is_server_error() => Outcome::Ok,
            _ => Outcome::Error,
        }
    }
}

/// A response or status code: 5xx is an error.
pub trait Response {
    /// The outcome.
    fn __vitals_outcome(&self) -> Outcome;
}
impl<R: ServerError> Response for &&&Classify<'_, R> {
    #[inline]
    fn __vitals_outcome(&self) -> Outcome {
        if self.0.is_server_error() {
            Outcome::Error
        } else {
            Outcome::Ok
        }
    }
}

/// actix-web's `(body, StatusCode)`: 5xx is an error. (Apart from [`Response`] because
/// `(http::StatusCode, T)` would overlap it.)
pub trait StatusLast {
    /// The outcome.
    fn __vitals_outcome(&self) -> Outcome;
}
#[cfg(feature = "actix-web")]
impl<T> StatusLast for &&Classify<'_, (T, actix_web::http::StatusCode)> {
    #[inline]
    fn __vitals_outcome(&self) -> Outcome {
        from_predicate(self.0 .1.is_server_error())
    }
}

/// Any `Result`: `Err` is an error.
pub trait AnyResult {
    /// The outcome.
    fn __vitals_outcome(&self) -> Outcome;
}
impl<T, E> AnyResult for &Classify<'_, Result<T, E>> {
    #[inline]
    fn __vitals_outcome(&self) -> Outcome {
        if self.0.is_err() {
            Outcome::Error
        } else {
            Outcome::Ok
        }
    }
}

/// Anything else: returning is success.
pub trait Anything {
    /// The outcome.
    fn __vitals_outcome(&self) -> Outcome;
}
impl<T: ?Sized> Anything for Classify<'_, T> {
    #[inline]
    fn __vitals_outcome(&self) -> Outcome {
        Outcome::Ok
    }
}

/// The outcome a user predicate gives: `ok_if` and `error_if`.
#[inline]
#[must_use]
pub fn from_predicate(is_error: bool) -> Outcome {
    if is_error {
        Outcome::Error
    } else {
        Outcome::Ok
    }
}

#[cfg(feature = "http")]
mod http_impls {
    use super::ServerError;

    impl<B> ServerError for http::Response<B> {
        fn is_server_error(&self) -> bool {
            self.status().is_server_error()
        }
    }
    impl ServerError for http::StatusCode {
        fn is_server_error(&self) -> bool {
            http::StatusCode::is_server_error(self)
        }
    }
    impl<T> ServerError for (http::StatusCode, T) {
        fn is_server_error(&self) -> bool {
            self.0.is_server_error()
        }
    }
}

#[cfg(feature = "actix-web")]
mod actix_impls {
    use super::ServerError;

    impl<B> ServerError for actix_web::HttpResponse<B> {
        fn is_server_error(&self) -> bool {
            self.status().is_server_error()
        }
    }
    impl ServerError for actix_web::http::StatusCode {
        fn is_server_error(&self) -> bool {
            actix_web::http::StatusCode::is_server_error(self)
        }
    }
}
