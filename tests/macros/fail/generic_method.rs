#[micro::service]
trait Store {
    async fn put<T: serde::Serialize>(&self, ctx: &micro::Context, req: T) -> micro::Result<()>;
    async fn get<'a>(&'a self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
