//! Which service and endpoint a request is for, as go-micro's API resolvers decide it.
//!
//! - `micro` (default): the cleaned path's segments. One segment: service = it, endpoint =
//!   `Seg.Call`; two: service = the first, endpoint = both (`/foo/bar` → `foo`, `Foo.Bar`);
//!   three starting with `v[0-9]+`: service `vN.second`, endpoint from the last two; more:
//!   service = every segment but the last two joined with `.`, endpoint = the last two. For
//!   the proxying handlers (`http`, `proxy`, `web`) the service is the first segment (or
//!   `vN.second`) and must match `^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$`.
//! - `path`: service = the first segment; endpoint = the last two segments after it, or the
//!   service and the one after it (`/foo/bar` → `Foo.Bar`), or `Foo.Call` when there is none.
//! - `vpath`: as `path`, with a leading `vN` segment joined to the service (`/v1/foo/bar` →
//!   `v1.foo`, `Foo.Bar`).
//! - `host`: service = the request's host without its port; endpoint from the whole path.
//! - `grpc`: `/package.Service/Method` → service = `package`, endpoint = `Service.Method`.
//!
//! Each segment of an endpoint becomes CamelCase by its `-`-separated words, keeping inner
//! capitals (`baz-xyz` → `BazXyz`, `getUser` → `GetUser`). The namespace is joined with a
//! `.`, except that one ending in `.` is joined directly and one ending in `-` is joined
//! directly with the service's dots turned into dashes.

use micro::Error;

/// A resolver by name.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolver {
    /// go-micro's default: service and endpoint from the path.
    #[default]
    Micro,
    /// Service = the first path segment.
    Path,
    /// Service = the first segment, or `vN.second`.
    Vpath,
    /// Service = the host.
    Host,
    /// `/package.Service/Method`.
    Grpc,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The service's full name (namespace included).
    pub service: String,
    /// The endpoint, e.g. `Example.Call` (empty for the proxying handlers).
    pub endpoint: String,
}

/// The error id of the gateway.
pub const ID: &str = "go.micro.api";

/// A path's segments after cleaning (`//a/./b/../c/` → `a`, `c`).
pub fn segments(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    out
}

fn is_version(segment: &str) -> bool {
    segment.len() > 1
        && segment.starts_with('v')
        && segment[1..].chars().all(|c| c.is_ascii_digit())
}

/// `baz-xyz` → `BazXyz`; inner capitals stay.
pub fn camel(segment: &str) -> String {
    segment
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

fn method(parts: &[&str]) -> String {
    parts.iter().map(|p| camel(p)).collect::<Vec<_>>().join(".")
}

/// `namespace` + `service` by the joining rules.
pub fn with_namespace(namespace: &str, service: &str) -> String {
    if namespace.is_empty() {
        service.to_string()
    } else if namespace.ends_with('.') {
        format!("{namespace}{service}")
    } else if namespace.ends_with('-') {
        format!("{namespace}{}", service.replace('.', "-"))
    } else {
        format!("{namespace}.{service}")
    }
}

/// The micro resolver's (service, endpoint) of a path, before the namespace.
pub fn api_route(path: &str) -> Option<(String, String)> {
    let parts = segments(path);
    match parts.as_slice() {
        [] => None,
        [one] => Some((one.to_string(), method(&[one, "Call"]))),
        [first, _] => Some((first.to_string(), method(&parts))),
        [v, second, last] if is_version(v) => {
            Some((format!("{v}.{second}"), method(&[second, last])))
        }
        _ => {
            let (service, endpoint) = parts.split_at(parts.len() - 2);
            Some((service.join("."), method(endpoint)))
        }
    }
}

/// The service of a proxied request (`http`, `proxy`, `web`): the first segment, or
/// `vN.second`; `None` when it is not a valid name.
pub fn proxy_route(path: &str) -> Option<String> {
    let parts = segments(path);
    let (service, alias) = match parts.as_slice() {
        [] => return None,
        [v, second, ..] if is_version(v) => (format!("{v}.{second}"), *second),
        [first, ..] => (first.to_string(), *first),
    };
    let valid = !alias.is_empty()
        && alias
            .split('-')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()));
    valid.then_some(service)
}

fn not_found(path: &str) -> Error {
    Error::not_found(ID, format!("no service in the path {path:?}"))
}

impl Resolver {
    /// The route of a request to `path` on `host` for an rpc-style handler.
    pub fn resolve(self, path: &str, host: &str, namespace: &str) -> Result<Route, Error> {
        let (service, endpoint) = match self {
            Resolver::Micro => api_route(path).ok_or_else(|| not_found(path))?,
            Resolver::Path | Resolver::Vpath => {
                let parts = segments(path);
                let skip =
                    usize::from(self == Resolver::Vpath && parts.len() > 1 && is_version(parts[0]));
                let service = match parts.get(skip) {
                    Some(service) if skip == 1 => format!("{}.{service}", parts[0]),
                    Some(service) => service.to_string(),
                    None => return Err(not_found(path)),
                };
                let base = parts[skip];
                let endpoint = match &parts[skip + 1..] {
                    [] => method(&[base, "Call"]),
                    [one] => method(&[base, one]),
                    rest => method(&rest[rest.len() - 2..]),
                };
                (service, endpoint)
            }
            Resolver::Host => {
                let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
                if name.is_empty() {
                    return Err(Error::bad_request(ID, "the request has no Host header"));
                }
                let parts = segments(path);
                let endpoint = match parts.as_slice() {
                    [] => method(&[name.split('.').next().unwrap_or(name), "Call"]),
                    [one] => method(&[name.split('.').next().unwrap_or(name), one]),
                    _ => method(&parts[parts.len() - 2..]),
                };
                (name.to_string(), endpoint)
            }
            Resolver::Grpc => {
                let parts = segments(path);
                let [full, method_name] = parts.as_slice() else {
                    return Err(Error::not_found(
                        ID,
                        format!("{path:?} is not /package.Service/Method"),
                    ));
                };
                let (package, service) = full.rsplit_once('.').unwrap_or(("", full));
                let name = if package.is_empty() { service } else { package };
                (name.to_string(), format!("{service}.{method_name}"))
            }
        };
        Ok(Route {
            service: with_namespace(namespace, &service),
            endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(r: Resolver, path: &str, ns: &str) -> (String, String) {
        let route = r.resolve(path, "shop.example.com:8080", ns).unwrap();
        (route.service, route.endpoint)
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn the_micro_resolver_follows_go_micro() {
        let m = Resolver::Micro;
        assert_eq!(route(m, "/foo", ""), pair("foo", "Foo.Call"));
        assert_eq!(route(m, "/foo/bar", ""), pair("foo", "Foo.Bar"));
        assert_eq!(route(m, "/foo/bar/baz", ""), pair("foo", "Bar.Baz"));
        assert_eq!(route(m, "/v1/foo/bar", ""), pair("v1.foo", "Foo.Bar"));
        assert_eq!(route(m, "/v1/foo", ""), pair("v1", "V1.Foo"));
        assert_eq!(route(m, "/a/b/c/d", ""), pair("a.b", "C.D"));
        assert_eq!(route(m, "/foo/baz-xyz", ""), pair("foo", "Foo.BazXyz"));
        assert_eq!(route(m, "/foo/getUser", ""), pair("foo", "Foo.GetUser"));
        assert_eq!(route(m, "//foo/./x/../bar/", ""), pair("foo", "Foo.Bar"));
        assert_eq!(
            route(m, "/example/call", "go.micro.srv"),
            pair("go.micro.srv.example", "Example.Call")
        );
        assert!(m.resolve("/", "", "").is_err());
    }

    #[test]
    fn namespaces_join_by_their_last_character() {
        assert_eq!(with_namespace("go.micro.api", "foo"), "go.micro.api.foo");
        assert_eq!(with_namespace("go.micro.api.", "foo"), "go.micro.api.foo");
        assert_eq!(with_namespace("prefix-", "v1.foo"), "prefix-v1-foo");
        assert_eq!(with_namespace("", "foo"), "foo");
    }

    #[test]
    fn proxy_routes_take_the_first_segment_or_a_version() {
        assert_eq!(
            proxy_route("/greeter/say/hello").as_deref(),
            Some("greeter")
        );
        assert_eq!(proxy_route("/v2/greeter/x").as_deref(), Some("v2.greeter"));
        assert_eq!(proxy_route("/my-svc").as_deref(), Some("my-svc"));
        assert_eq!(proxy_route("/bad_name/x"), None);
        assert_eq!(proxy_route("/-x"), None);
        assert_eq!(proxy_route("/"), None);
    }

    #[test]
    fn the_other_resolvers() {
        assert_eq!(
            route(Resolver::Path, "/foo/bar/baz", ""),
            pair("foo", "Bar.Baz")
        );
        assert_eq!(
            route(Resolver::Path, "/foo", "ns"),
            pair("ns.foo", "Foo.Call")
        );
        assert_eq!(
            route(Resolver::Vpath, "/v1/foo/bar", ""),
            pair("v1.foo", "Foo.Bar")
        );
        assert_eq!(
            route(Resolver::Vpath, "/foo/bar", ""),
            pair("foo", "Foo.Bar")
        );
        assert_eq!(
            route(Resolver::Host, "/cart/add", ""),
            pair("shop.example.com", "Cart.Add")
        );
        assert_eq!(
            route(Resolver::Host, "/", ""),
            pair("shop.example.com", "Shop.Call")
        );
        assert_eq!(
            route(Resolver::Grpc, "/greeter.v1.Greeter/Hello", ""),
            pair("greeter.v1", "Greeter.Hello")
        );
        assert_eq!(
            route(Resolver::Grpc, "/Greeter/Hello", ""),
            pair("Greeter", "Greeter.Hello")
        );
        assert!(Resolver::Grpc.resolve("/x", "", "").is_err());
    }
}
