//! Plan output: human text (Terraform-style, coloured unified diffs) and versioned JSON.

pub mod graph_svg;
pub mod html;
pub mod json;
pub mod junit;
pub mod status_page;
pub mod text;

/// Colour only on a terminal, and never with NO_COLOR set.
pub fn use_color(is_terminal: bool) -> bool {
    is_terminal && !crate::output::no_color() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
