//! A test rule that scores its package's model: the transaction carries
//! the row as attributes `f0`, `f1`, … (a float each; a missing one is
//! NaN) and `row` to say it carries one. Its verdict scores 1 point with the model's probability, exactly
//! (`p`, as Rust prints an `f32`, which reads back to the same value), and
//! the model's explanation when the transaction has `explain`; it panics
//! when the transaction has `trap`; a transaction without `row` passes
//! unscored; `width` makes the row that wide, whatever the model takes.
//! It scores with `Context::score`, so a recording host (`weir
//! features`, the backtest) is handed each row and score.

use weir_sdk::prelude::*;

pub fn evaluate(tx: &Transaction, ctx: &mut Context) -> Result<Verdict, Error> {
    if !tx.attributes.iter().any(|(k, _)| k == "row") {
        return Ok(Verdict::pass());
    }
    if tx.attributes.iter().any(|(k, _)| k == "trap") {
        ctx.model()?;
        // A rule that traps, so that its instance (and its model) is made again.
        panic!("asked to trap");
    }
    // Without a model in the package the row is as long as its attributes
    // say (`weir features` before there is a model).
    let width = match (tx.attributes.iter().find(|(k, _)| k == "width"), ctx.model()) {
        // A row as wide as asked, whatever the model takes.
        (Some((_, width)), _) => width.parse().map_err(|_| Error::msg("width is not a number"))?,
        (None, Ok(model)) => model.features(),
        (None, Err(_)) => tx.attributes.iter().filter(|(k, _)| k.starts_with('f')).count(),
    };
    let mut row = vec![f32::NAN; width];
    for (name, value) in &tx.attributes {
        if let Some(i) = name.strip_prefix('f').and_then(|i| i.parse::<usize>().ok())
            && i < row.len()
        {
            row[i] = value.parse().map_err(|_| Error::msg(format!("attribute {name} is not a number")))?;
        }
    }
    let p = ctx.score(&row)?;
    let verdict = Verdict::score(1, "MODEL", "scored by the model").with("p", p);
    // A rule would explain the transactions it flags; this one explains
    // when asked to.
    if !tx.attributes.iter().any(|(k, _)| k == "explain") {
        return Ok(verdict);
    }
    Ok(verdict.with_model(ctx.model()?, &row, names(row.len()), p))
}

/// The features' names, `f0`, `f1`, …, made once.
fn names(n: usize) -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| (0..n).map(|i| &*String::leak(format!("f{i}"))).collect());
    &names[..n.min(names.len())]
}

weir_sdk::rule!(evaluate);
