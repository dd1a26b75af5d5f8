use super::*;

#[test]
fn a_password_is_hidden_and_the_rest_kept() {
    for (url, shown) in [
        ("redis://:pw@127.0.0.1:6411/", "redis://:***@127.0.0.1:6411/"),
        ("redis://user:pw@host:6379/2", "redis://user:***@host:6379/2"),
        ("rediss://default:p%40ss@cache.example:6380/", "rediss://default:***@cache.example:6380/"),
        ("http://admin:hunter22@10.0.0.1:3002", "http://admin:***@10.0.0.1:3002"),
        // Unencoded `@`, `/`, `?` and `:` in the password: all of it is hidden.
        ("redis://:p@ss/w?rd:x@host:1/", "redis://:***@host:1/"),
        // A lone name may be read as the password: hidden whole.
        ("redis://onlyname@host/", "redis://***@host/"),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
    }
}

#[test]
fn urls_without_a_secret_are_unchanged() {
    for url in [
        "redis://127.0.0.1:6379/",
        "rediss://cache:6380/0",
        "redis://user:@host/",
        "redis://:@host/",
        "redis://host/?protocol=resp3",
        "http://127.0.0.1:3002/api/workers/status?limit=5",
        "",
        "not a url",
        "redis://",
    ] {
        assert_eq!(redact_url(url), url, "{url}");
    }
}

#[test]
fn secret_query_values_are_hidden() {
    assert_eq!(
        redact_url("redis://host:6379/?password=pw&db=1&authToken=t&x"),
        "redis://host:6379/?password=***&db=1&authToken=***&x"
    );
    assert_eq!(redact_url("redis://u:pw@h/?Password=pw#f"), "redis://u:***@h/?Password=***#f");
}

#[test]
fn malformed_input_never_echoes_what_may_be_a_password() {
    for (input, shown) in [
        (":pw@host:6379", "***@host:6379"),
        ("user:pw@host", "***@host"),
        ("://:pw@host", "://:***@host"),
        ("redis://:pw@", "redis://:***@"),
        ("redis://@host", "redis://@host"),
        ("@", "@"),
        ("redis://é:ü@ß/", "redis://é:***@ß/"),
    ] {
        assert_eq!(redact_url(input), shown, "{input}");
    }
    // Any string at all: no panic, and whatever follows a `:` before the last `@` is gone.
    let odd = ["%", "%%zz", "://", ":::@@@", "a://b@c@d:e", "?password=", "redis://h?=&&=x&pass"];
    for input in odd {
        let _ = redact_url(input);
        let _ = url_secrets(input);
        let _ = scrub(input, &[input]);
    }
}

#[test]
fn url_secrets_name_what_is_hidden() {
    assert_eq!(url_secrets("redis://:pw@h/"), ["pw"]);
    assert_eq!(url_secrets("redis://u:a%2Fb@h/?token=t"), ["a%2Fb", "a/b", "t"]);
    assert_eq!(url_secrets("redis://name@h/"), ["name"]);
    assert!(url_secrets("redis://h:1/").is_empty());
    // A malformed escape is kept as written: no decoded second form.
    assert_eq!(url_secrets("redis://:%zz%4@h/"), ["%zz%4"]);
}

#[test]
fn scrub_hides_known_secrets_and_urls_in_free_text() {
    let secrets = ["hunter22".to_string(), "abc".to_string()];
    assert_eq!(
        scrub("AUTH hunter22 failed for rediss://u:hunter22@h:1/ (abc)", &secrets),
        "AUTH *** failed for rediss://u:***@h:1/ (abc)"
    );
    assert_eq!(
        scrub("\"url\":\"redis://:other@h/\", next redis://:x@y/ end", &[] as &[&str]),
        "\"url\":\"redis://:***@h/\", next redis://:***@y/ end"
    );
    assert!(matches!(scrub("nothing here", &secrets), Cow::Borrowed(_)));
    assert!(matches!(scrub("see http://h:1/x", &secrets), Cow::Borrowed(_)));
}
