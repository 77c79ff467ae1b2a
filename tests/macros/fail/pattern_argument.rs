#[micro::service]
trait Adder {
    async fn add(&self, ctx: &micro::Context, (a, b): (u32, u32)) -> micro::Result<u32>;
    async fn negate(&self, ctx: &micro::Context, mut n: i32) -> micro::Result<i32>;
}

fn main() {}
