//! The unit head's desk (`/desk`): server-rendered pages a head opens from the signed
//! link in their e-mail. This first part holds the links' signing and the scopes they
//! grant ([`token`]); the pages come next.
//!
//! It never shows applicant identity and never grants more than the link's scope.

pub mod token;
