// Generic traits, supertraits, non-method items and default bodies are rejected.
#[micro::service]
trait Generic<T> {
    async fn get(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

#[micro::service]
trait Sub: Clone {
    const LIMIT: u32;
    type Item;
    async fn get(&self, ctx: &micro::Context, req: String) -> micro::Result<String> {
        Ok(req)
    }
}

fn main() {}
