//! What a person sees of a vendor's message: rich text (`RECORD_RICH_TEXT`, HTML) reduced to
//! plain text, never rendered as markup (push-spec.md, "More about keys and values").

/// Plain text of a message: tags dropped, block ends and `<br>` as line breaks, form inputs as
/// `placeholder: value` lines, character references decoded. Plain messages pass unchanged.
pub fn plain_text(message: &str, kind: Option<&str>) -> String {
    // RECORD_RICH_TEXT is HTML; RECORD_RECORD is what someone typed, angle brackets included.
    // A message of no stated type is HTML only when it looks like it.
    let rich = match kind {
        Some(k) => k.eq_ignore_ascii_case("RECORD_RICH_TEXT"),
        None => looks_like_html(message),
    };
    if !rich {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let Some(close) = rest[open..].find('>') else {
            out.push_str(&decode_entities(&rest[open..]));
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        match name.as_str() {
            "br" => out.push('\n'),
            "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "form" | "table" if closing => {
                out.push('\n')
            }
            "input" | "textarea" | "select" if !closing => {
                let label = attribute(tag, "placeholder").or_else(|| attribute(tag, "name")).unwrap_or_default();
                let value = attribute(tag, "value").unwrap_or_default();
                if !label.is_empty() || !value.is_empty() {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&format!("{}: {}\n", decode_entities(&label), decode_entities(&value)));
                }
            }
            _ => {}
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(&decode_entities(rest));
    // Collapse the blank lines that block ends leave behind.
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let mut text = String::new();
    for line in lines {
        if line.trim().is_empty() && (text.is_empty() || text.ends_with("\n\n")) {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    text.trim().to_string()
}

fn looks_like_html(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["<br", "<p", "<div", "<span", "<img", "<a ", "<form", "<input", "<font"].iter().any(|t| lower.contains(t))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let start = from + pos;
        from = start + name.len();
        let before_ok = start == 0 || lower.as_bytes()[start - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_string(),
            _ => value.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("").to_string(),
        });
    }
    None
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_are_unchanged() {
        assert_eq!(plain_text("a < b & c", Some("RECORD_RECORD")), "a < b & c");
        // A visitor who types markup sees it as typed.
        assert_eq!(plain_text("<img src=x>", Some("RECORD_RECORD")), "<img src=x>");
        assert_eq!(plain_text("<br>hi", None), "hi");
    }

    #[test]
    fn rich_text_becomes_lines() {
        let html = "<p>您好，欢迎咨询<br/>请问您想了解哪个课程？</p><div>&lt;报名&gt;&nbsp;优惠</div>";
        assert_eq!(plain_text(html, Some("RECORD_RICH_TEXT")), "您好，欢迎咨询\n请问您想了解哪个课程？\n<报名> 优惠");
    }

    #[test]
    fn form_inputs_become_placeholder_value_lines() {
        let html = r#"<form action="x"><input name="mobile" placeholder="手机号码" value="13800138000"><input type="text" name="name" placeholder='姓名' value="张三"/></form>"#;
        assert_eq!(plain_text(html, Some("RECORD_RICH_TEXT")), "手机号码: 13800138000\n姓名: 张三");
    }

    #[test]
    fn scripts_are_not_kept_as_markup() {
        let html = "<img src=x onerror=alert(1)>hi<script>alert(2)</script>";
        let text = plain_text(html, Some("RECORD_RICH_TEXT"));
        assert!(!text.contains('<'), "{text}");
    }
}
