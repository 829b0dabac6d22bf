//! The actix-web extractor (feature `actix`): a handler taking a
//! [`VerifiedUser`] runs only for a request with a valid, unrevoked access
//! token; any other gets keyward's own `401`/`503` JSON answer.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};

use crate::claims::VerifiedUser;
use crate::error::{bearer_token, VerifyError};
use crate::verifier::Verifier;

/// A refusal as an actix-web error.
#[derive(Debug)]
struct Rejection(VerifyError);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.refusal().status).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    fn error_response(&self) -> HttpResponse {
        let refusal = self.0.refusal();
        HttpResponse::build(self.status_code())
            .insert_header(refusal.header)
            .content_type("application/json")
            .body(self.0.body())
    }
}

/// The app was not given the verifier: a programming error, answered 500.
#[derive(Debug)]
struct NoVerifier;

impl std::fmt::Display for NoVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no keyward_verify::Verifier in the app data")
    }
}

impl ResponseError for NoVerifier {
    fn error_response(&self) -> HttpResponse {
        HttpResponse::InternalServerError()
            .content_type("application/json")
            .body(r#"{"error":"internal","message":"Something went wrong on our side."}"#)
    }
}

/// Reads the Bearer token and verifies it with the [`Verifier`] in the
/// app's data (`App::new().app_data(web::Data::new(verifier))`, or the
/// verifier itself as `app_data`).
impl FromRequest for VerifiedUser {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .map(|data| data.get_ref().clone())
            .or_else(|| req.app_data::<Verifier>().cloned());
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        Box::pin(async move {
            let Some(verifier) = verifier else {
                log::error!("keyward-verify: {NoVerifier}");
                return Err(NoVerifier.into());
            };
            let token = bearer_token(header.as_deref()).map_err(Rejection)?;
            match verifier.verify(token).await {
                Ok(claims) => Ok(VerifiedUser(claims)),
                Err(e) => Err(Rejection(e).into()),
            }
        })
    }
}
