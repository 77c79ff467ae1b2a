// Implementations must return `Send` futures: the server runs them on any worker thread.
use micro::Context;
use std::rc::Rc;

#[micro::service]
trait Greeter {
    async fn hello(&self, ctx: &Context, req: String) -> micro::Result<String>;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, _ctx: &Context, req: String) -> micro::Result<String> {
        let held = Rc::new(req);
        tokio::task::yield_now().await;
        Ok(held.to_string())
    }
}

fn main() {}
