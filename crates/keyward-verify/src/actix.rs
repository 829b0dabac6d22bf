//! The actix-web extractor (feature `actix`): a handler taking a
//! [`VerifiedUser`] runs only for a request with a valid, unrevoked access
//! token; any other gets keyward's own `401`/`503` JSON answer.

use std::future::{Future, Ready};
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::Either;

use crate::claims::VerifiedUser;
use crate::error::{bearer_token, VerifyError};
use crate::token::Local;
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

/// The answer of [`VerifiedUser::from_request`]: ready at once for a
/// token decided from memory (nearly every request: no allocation, no boxed
/// future), or a boxed future when keyward's keys must be fetched first.
type Verifying = Either<Ready<Verified>, Pin<Box<dyn Future<Output = Verified>>>>;

type Verified = Result<VerifiedUser, actix_web::Error>;

fn ready(answer: Verified) -> Verifying {
    Either::Left(std::future::ready(answer))
}

/// Reads the Bearer token and verifies it with the [`Verifier`] in the
/// app's data (`App::new().app_data(web::Data::new(verifier))`, or the
/// verifier itself as `app_data`).
impl FromRequest for VerifiedUser {
    type Error = actix_web::Error;
    type Future = Verifying;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .map(web::Data::get_ref)
            .or_else(|| req.app_data::<Verifier>());
        let Some(verifier) = verifier else {
            log::error!("keyward-verify: {NoVerifier}");
            return ready(Err(NoVerifier.into()));
        };
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let token = match bearer_token(header) {
            Ok(token) => token,
            Err(e) => return ready(Err(Rejection(e).into())),
        };
        match verifier.verify_from_memory(token) {
            Ok(claims) => ready(Ok(VerifiedUser(claims))),
            Err(Local::Refused(e)) => ready(Err(Rejection(e).into())),
            // A key it has not seen: fetch the keys, then verify again.
            Err(Local::UnknownKid(_)) => {
                let (verifier, token) = (verifier.clone(), token.to_owned());
                Either::Right(Box::pin(async move {
                    match verifier.verify_shared(&token).await {
                        Ok(claims) => Ok(VerifiedUser(claims)),
                        Err(e) => Err(Rejection(e).into()),
                    }
                }))
            }
        }
    }
}
