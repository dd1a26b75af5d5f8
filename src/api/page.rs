//! A page of a listing, from the query string: `?offset=N&limit=M`.

use super::error::ApiError;

/// The most entries one page lists.
pub(super) const MAX_LIMIT: usize = 500;
/// Entries per page when the query names none.
pub(super) const DEFAULT_LIMIT: usize = 50;

/// Which entries of a listing to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Page {
    /// The position of the first entry (0: the head).
    pub(super) offset: usize,
    /// How many entries, 1 to [`MAX_LIMIT`].
    pub(super) limit: usize,
}

impl Page {
    /// The page a query string asks for; a bad or unknown parameter is a 400 naming it.
    pub(super) fn from_query(query: &str) -> Result<Page, ApiError> {
        let mut page = Page { offset: 0, limit: DEFAULT_LIMIT };
        let mut seen = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if seen.contains(&key) {
                return Err(ApiError::bad_request(format!("{key} is given twice")).with("field", key));
            }
            seen.push(key);
            let number = || {
                let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| value.parse::<usize>().ok()).flatten().ok_or_else(|| {
                    ApiError::bad_request(format!("{key} must be a whole number ≥ 0, not {value:?}"))
                        .with("field", key)
                })
            };
            match key {
                "offset" => page.offset = number()?,
                "limit" => page.limit = number()?,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter {key:?} (expected offset and limit)"
                    ))
                    .with("field", key));
                }
            }
        }
        if page.limit == 0 || page.limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {}",
                page.limit
            ))
            .with("field", "limit"));
        }
        Ok(page)
    }

    /// The positions this page covers.
    pub(super) fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset.saturating_add(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    #[test]
    fn a_query_gives_its_page_or_names_its_problem() {
        assert_eq!(Page::from_query("").unwrap(), Page { offset: 0, limit: DEFAULT_LIMIT });
        assert_eq!(Page::from_query("offset=100&limit=25").unwrap(), Page { offset: 100, limit: 25 });
        assert_eq!(Page::from_query("limit=500").unwrap().range(), 0..500);
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("offset=-1", "offset"),
            ("offset=x", "offset"),
            ("limit=", "limit"),
            ("sort=asc", "sort"),
            ("limit=+5", "limit"),
            ("offset=1&offset=2", "offset"),
            ("offset=99999999999999999999999", "offset"),
        ] {
            let e = Page::from_query(query).unwrap_err();
            assert_eq!(e.status_code(), actix_web::http::StatusCode::BAD_REQUEST, "{query}");
            assert!(e.to_string().contains(field), "{query}: {e}");
        }
        assert_eq!(Page::from_query(&format!("offset={}", usize::MAX)).unwrap().range().len(), 0);
    }
}
