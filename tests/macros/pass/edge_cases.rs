//! Corners: a trait declared inside a function, a private trait, types without a schema,
//! `r#` method names, an empty service, a renamed endpoint that frees a name.

use micro::Context;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Plain(u32);

#[micro::service]
trait Empty {}

#[micro::service]
pub(crate) trait Keywords {
    async fn r#match(&self, ctx: &Context, req: Plain) -> micro::Result<Plain>;
    #[micro(name = "New")]
    async fn create(&self, ctx: &Context, req: u64) -> micro::Result<()>;
    #[micro(name = "Hello")]
    async fn hello_v2(&self, ctx: &Context, req: String) -> micro::Result<String>;
}

struct K;

impl Keywords for K {
    async fn r#match(&self, _: &Context, req: Plain) -> micro::Result<Plain> {
        Ok(req)
    }
    async fn create(&self, _: &Context, _: u64) -> micro::Result<()> {
        Ok(())
    }
    async fn hello_v2(&self, _: &Context, req: String) -> micro::Result<String> {
        Ok(req)
    }
}

impl Empty for K {}

fn main() {
    use micro::server::IntoHandlers;

    #[micro::service]
    trait Local {
        async fn ping(&self, ctx: &Context, req: u8) -> micro::Result<u8>;
    }
    struct L;
    impl Local for L {
        async fn ping(&self, _: &Context, req: u8) -> micro::Result<u8> {
            Ok(req)
        }
    }

    let handlers = KeywordsServer::new(K).into_handlers();
    let names: Vec<&str> = handlers.iter().map(|h| h.endpoint.name.as_str()).collect();
    assert_eq!(names, ["Keywords.Match", "Keywords.New", "Keywords.Hello"]);
    assert!(handlers[0].endpoint.request.is_none(), "no JsonSchema, no shape");
    assert_eq!(handlers[2].endpoint.request.as_ref().map(|v| v.type_.as_str()), Some("string"));
    assert!(EmptyServer::new(K).into_handlers().is_empty());
    assert_eq!(LocalServer::new(L).into_handlers().len(), 1);
}
