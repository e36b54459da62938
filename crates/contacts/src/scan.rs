//! Scanning one message's text for contacts.

use crate::ContactKind;

/// Full-width digits, letters and punctuation as their ASCII forms (visitors on phones type
/// `１５８…` and `：`).
fn normalize(text: &str) -> Vec<char> {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '。' => '.',
            c => c,
        })
        .collect()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Characters between a cue and what it names: `微信：abc`, `QQ号是 123`, `电话 (0351)…`.
fn is_filler(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ':' | '='
                | '是'
                | '号'
                | '码'
                | '为'
                | '就'
                | '搜'
                | '吧'
                | '加'
                | '「'
                | '」'
                | '『'
                | '【'
                | '】'
                | '"'
                | '\''
                | '~'
                | '>'
                | '·'
                | '-'
                | ','
                | '，'
                | '('
                | ')'
        )
}

const QQ_CUES: &[&str] = &["qq", "扣扣", "企鹅", "q"];
const WECHAT_CUES: &[&str] =
    &["微信", "weixin", "wechat", "vx", "wx", "v信", "威信", "薇信", "加我", "加微", "加v", "vx号"];
/// Words before a number that make it something else than a contact.
const NOT_CONTACT_BEFORE: &[&str] = &[
    "订单",
    "单号",
    "验证",
    "身份证",
    "证件",
    "编号",
    "工号",
    "学号",
    "房间",
    "快递",
    "运单",
    "卡号",
    "尾号",
    "密码",
    "价格",
    "学费",
    "费用",
    "报价",
    "金额",
    "¥",
    "$",
    "价",
    "钱",
    "共",
    "邮编",
    "批次",
    "型号",
    "序列",
];
/// Characters right after a number that make it a price, a date, a quantity.
const NOT_CONTACT_AFTER: &[char] = &[
    '元', '块', '万', '千', '年', '月', '日', '岁', '分', '秒', '%', '个', '次', '人', '天', '号', '期', '米', 'K', 'k',
];

/// The cue ending right before `end` (after skipping filler), lowercased for matching.
fn cue_before(chars: &[char], end: usize, cues: &[&str]) -> bool {
    let mut i = end;
    let mut skipped = 0;
    while i > 0 && is_filler(chars[i - 1]) && skipped < 6 {
        i -= 1;
        skipped += 1;
    }
    let before: String = chars[i.saturating_sub(8)..i].iter().collect::<String>().to_lowercase();
    cues.iter().any(|cue| {
        before.ends_with(cue) && {
            // An ASCII cue must be a word of its own: `qq`, not the end of `abcqq`.
            let cue_start = i - cue.chars().count();
            !cue.is_ascii() || cue_start == 0 || !is_word(chars[cue_start - 1])
        }
    })
}

/// A cue earlier in the same clause, within a few characters: `微信就是手机号 139…`,
/// `QQ也行：4662…` (no sentence punctuation between).
fn cue_in_clause(chars: &[char], start: usize, cues: &[&str]) -> bool {
    let from = start.saturating_sub(12);
    let clause_start = chars[from..start]
        .iter()
        .rposition(|c| matches!(c, '，' | ',' | '。' | '.' | '；' | ';' | '!' | '！' | '?' | '？'))
        .map_or(from, |p| from + p + 1);
    let window: String = chars[clause_start..start].iter().collect::<String>().to_lowercase();
    cues.iter().any(|c| window.contains(c))
}

/// A negative word anywhere in the few characters before `start`.
fn negative_before(chars: &[char], start: usize) -> bool {
    let window: String = chars[start.saturating_sub(8)..start].iter().collect();
    NOT_CONTACT_BEFORE.iter().any(|w| window.contains(w))
}

/// A unit glued to the number: `3800元`, `15号`, `3天` (`022-23456789 天津` is a city after a space).
fn negative_after(chars: &[char], end: usize) -> bool {
    chars.get(end).is_some_and(|c| NOT_CONTACT_AFTER.contains(c) || *c == ':')
}

fn valid_mobile(d: &str) -> bool {
    let b = d.as_bytes();
    if b.len() != 11 || b[0] != b'1' {
        return false;
    }
    matches!(
        (b[1], b[2]),
        (b'3' | b'8', _)
            | (b'4', b'5'..=b'9')
            | (b'5', b'0'..=b'3' | b'5'..=b'9')
            | (b'6', b'2' | b'5'..=b'7')
            | (b'7', b'0'..=b'8')
            | (b'9', b'0'..=b'3' | b'5'..=b'9')
    )
}

/// The mobile in a digit string, with a +86 / 0086 / 86 prefix dropped.
fn mobile(d: &str) -> Option<String> {
    let bare = match d.len() {
        15 => d.strip_prefix("0086")?,
        13 => d.strip_prefix("86")?,
        _ => d,
    };
    valid_mobile(bare).then(|| bare.to_string())
}

/// A landline `0AREA-NUMBER`: 010 and 02x have a two-digit code after the 0, the rest three;
/// the number has 7 or 8 digits.
fn landline(d: &str) -> Option<String> {
    if !d.starts_with('0') || d.starts_with("00") {
        return None;
    }
    let area = if matches!(d.as_bytes().get(1), Some(b'1' | b'2')) { 3 } else { 4 };
    let number = d.get(area..)?;
    ((7..=8).contains(&number.len()) && !number.starts_with('0')).then(|| format!("{}-{number}", &d[..area]))
}

/// A run of digit groups: `158 0489 2563`, `+86-138-1234-5678`, `(0351)7654321`.
struct NumberRun {
    start: usize,
    end: usize,
    groups: Vec<(usize, usize, String)>,
}

fn number_runs(chars: &[char]) -> Vec<NumberRun> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (matches!(chars[i], '+' | '(') && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        let mut groups = Vec::new();
        loop {
            while i < chars.len() && !chars[i].is_ascii_digit() && matches!(chars[i], '+' | '(') {
                i += 1;
            }
            let g = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((g, i, chars[g..i].iter().collect::<String>()));
            // Up to two separators, then more digits, continue the run.
            let mut j = i;
            while j < chars.len() && j - i < 2 && matches!(chars[j], ' ' | '-' | '.' | '·' | '(' | ')' | '+') {
                j += 1;
            }
            if j > i && chars.get(j).is_some_and(char::is_ascii_digit) {
                i = j;
            } else {
                break;
            }
        }
        let end = i;
        runs.push(NumberRun { start, end, groups });
    }
    runs
}

/// Contacts in one message, normalized: mobiles, landlines, WeChat ids, QQ numbers, e-mails.
pub fn extract_from_text(text: &str) -> Vec<(ContactKind, String)> {
    let mut chars = normalize(text);
    let mut out: Vec<(ContactKind, String)> = Vec::new();
    let mut add = |kind: ContactKind, value: String| {
        if !out.iter().any(|(k, v)| *k == kind && *v == value) {
            out.push((kind, value));
        }
    };

    // E-mail addresses, then URLs, are taken out first: their digits are no phone numbers.
    let ats: Vec<usize> = (0..chars.len()).filter(|&i| chars[i] == '@').collect();
    for at in ats {
        let local_ok = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
        let domain_ok = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-');
        let mut s = at;
        while s > 0 && local_ok(&chars[s - 1]) {
            s -= 1;
        }
        let mut e = at + 1;
        while e < chars.len() && domain_ok(&chars[e]) {
            e += 1;
        }
        let domain: String = chars[at + 1..e].iter().collect::<String>().trim_end_matches('.').to_string();
        let tld_ok =
            domain.rsplit('.').next().is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()));
        if s < at && domain.contains('.') && tld_ok {
            let local: String = chars[s..at].iter().collect();
            add(ContactKind::Email, format!("{local}@{domain}"));
            for c in &mut chars[s..at + 1 + domain.chars().count()] {
                *c = ' ';
            }
        }
    }
    let lower: String = chars.iter().collect::<String>().to_lowercase();
    for prefix in ["http://", "https://", "www."] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(prefix) {
            let byte = from + pos;
            let start = lower[..byte].chars().count();
            let mut end = start;
            while end < chars.len()
                && !chars[end].is_whitespace()
                && (chars[end].is_ascii() || chars[end] == '\u{FFFD}')
            {
                end += 1;
            }
            for c in &mut chars[start..end] {
                *c = ' ';
            }
            from = byte + prefix.len();
        }
    }

    // Numbers: mobiles, landlines, QQ numbers; a number after a WeChat cue is the WeChat id too.
    for run in number_runs(&chars) {
        let glued_letter = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_alphabetic());
        let qq_cue =
            cue_before(&chars, run.start, QQ_CUES) || cue_in_clause(&chars, run.start, &["qq", "扣扣", "企鹅"]);
        let wechat_cue = cue_before(&chars, run.start, WECHAT_CUES)
            || cue_in_clause(
                &chars,
                run.start,
                &["微信", "weixin", "wechat", "v信", "威信", "薇信", "加微", "vx", "wx"],
            );
        // Part of a code like SF1234567890 (letters glued on), unless the letters are the cue.
        if (run.start > 0 && glued_letter(run.start - 1) && !qq_cue && !wechat_cue) || glued_letter(run.end) {
            continue;
        }
        if negative_before(&chars, run.start) || negative_after(&chars, run.end) {
            continue;
        }
        let groups = &run.groups;
        let mut i = 0;
        while i < groups.len() {
            let mut digits = String::new();
            // Where the next number starts, once one is found.
            let mut matched = None;
            for j in i..groups.len() {
                digits.push_str(&groups[j].2);
                if digits.len() > 15 {
                    break;
                }
                let found = if let Some(m) = mobile(&digits) {
                    if wechat_cue {
                        add(ContactKind::Weixin, m.clone());
                    }
                    Some((ContactKind::Mobile, m))
                } else if let Some(t) = landline(&digits) {
                    // A landline must end where its groups end: 0351 7654321 8 is no landline.
                    Some((ContactKind::Tel, t))
                } else if qq_cue
                    && (5..=11).contains(&digits.len())
                    && !digits.starts_with('0')
                    && j + 1 == groups.len()
                {
                    Some((ContactKind::Qq, digits.clone()))
                } else {
                    None
                };
                if let Some((kind, value)) = found {
                    let next_continues = groups.get(j + 1).is_some_and(|g| {
                        // Stop only if the next group does not make a longer valid number of the same kind.
                        let longer = format!("{digits}{}", g.2);
                        kind == ContactKind::Tel && landline(&longer).is_some()
                    });
                    if !next_continues {
                        add(kind, value);
                        matched = Some(j + 1);
                        break;
                    }
                }
            }
            i = matched.unwrap_or(i + 1);
        }
    }

    // WeChat ids: after a cue, or a whole message that is nothing but an id.
    let ids = id_tokens(&chars);
    let whole: Vec<char> = chars.iter().copied().filter(|c| !c.is_whitespace()).collect();
    for (start, end) in ids {
        let id: String = chars[start..end].iter().collect();
        let cued = cue_before(&chars, start, WECHAT_CUES);
        let is_whole = end - start == whole.len() && id.chars().any(|c| c.is_ascii_digit());
        if cued || is_whole {
            add(ContactKind::Weixin, id);
        }
    }
    out
}

/// Candidate WeChat ids: a letter, then 5 to 19 letters, digits, `_` or `-`, standing alone.
fn id_tokens(chars: &[char]) -> Vec<(usize, usize)> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let id_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if id_char(chars[i]) && (i == 0 || !id_char(chars[i - 1])) {
            let start = i;
            while i < chars.len() && id_char(chars[i]) {
                i += 1;
            }
            let len = i - start;
            if chars[start].is_ascii_alphabetic() && (6..=20).contains(&len) {
                let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
                // The cue words themselves are no ids.
                if !matches!(word.as_str(), "weixin" | "wechat") {
                    tokens.push((start, i));
                }
            }
        } else {
            i += 1;
        }
    }
    tokens
}

/// A mobile typed over two messages: the digits ending one and those starting the next.
pub fn split_mobile(first: &str, second: &str) -> Option<String> {
    let tail: String = {
        let a = normalize(first.trim_end());
        let mut i = a.len();
        while i > 0 && (a[i - 1].is_ascii_digit() || matches!(a[i - 1], ' ' | '-')) {
            i -= 1;
        }
        a[i..].iter().filter(|c| c.is_ascii_digit()).collect()
    };
    let head: String = {
        let b = normalize(second.trim_start());
        let mut i = 0;
        while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], ' ' | '-')) {
            i += 1;
        }
        // The second message must be only the rest of the number.
        if b[i..].iter().any(|c| !c.is_whitespace()) {
            return None;
        }
        b[..i].iter().filter(|c| c.is_ascii_digit()).collect()
    };
    if tail.len() < 3 || head.len() < 3 || mobile(&tail).is_some() || mobile(&head).is_some() {
        return None;
    }
    mobile(&format!("{tail}{head}"))
}

/// A value typed into a contact field of the card, normalized the way contacts found in the
/// chat are, so that the two compare: `+86 158-0489-2563` → (mobile, `15804892563`),
/// `(0351)7654321` → (tel, `0351-7654321`), `ABC_123` → (weixin, `abc_123`). A mobile in the
/// `tel` field counts as a mobile; a WeChat id that is a mobile number counts as both. Values
/// that are no contact of their kind give nothing.
pub fn normalize_field(kind: ContactKind, raw: &str) -> Vec<(ContactKind, String)> {
    let chars = normalize(raw.trim());
    let text: String = chars.iter().collect();
    let digits: String = chars.iter().filter(|c| c.is_ascii_digit()).collect();
    let only_phone_chars = !digits.is_empty()
        && chars.iter().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'));
    let mut out = Vec::new();
    match kind {
        ContactKind::Mobile | ContactKind::Tel => {
            if only_phone_chars {
                if let Some(m) = mobile(&digits) {
                    out.push((ContactKind::Mobile, m));
                } else if let Some(t) = landline(&digits) {
                    out.push((ContactKind::Tel, t));
                }
            }
        }
        ContactKind::Weixin => {
            let id = text.trim().to_lowercase();
            let plausible = (5..=40).contains(&id.chars().count())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
            if plausible {
                if let Some(m) = mobile(&id) {
                    out.push((ContactKind::Mobile, m));
                }
                out.push((ContactKind::Weixin, id));
            }
        }
        ContactKind::Qq => {
            if digits.len() == text.trim().chars().count()
                && (5..=11).contains(&digits.len())
                && !digits.starts_with('0')
            {
                out.push((ContactKind::Qq, digits));
            }
        }
        ContactKind::Email => {
            let email = text.trim().to_lowercase();
            let valid = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            }) && !email.chars().any(char::is_whitespace);
            if valid {
                out.push((ContactKind::Email, email));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(ContactKind, String)> {
        extract_from_text(text)
    }

    fn one(kind: ContactKind, value: &str) -> Vec<(ContactKind, String)> {
        vec![(kind, value.to_string())]
    }

    #[test]
    fn mobiles_in_every_shape() {
        for text in [
            "15804892563",
            "我的手机号是15804892563",
            "158 0489 2563",
            "158-0489-2563",
            "１５８０４８９２５６３",
            "+86 158 0489 2563",
            "+86-15804892563",
            "008615804892563",
            "8615804892563",
            "电话：15804892563，谢谢",
        ] {
            assert_eq!(found(text), one(ContactKind::Mobile, "15804892563"), "{text}");
        }
    }

    #[test]
    fn look_alikes_are_not_mobiles() {
        for text in [
            "订单号 2023112415804892563",
            "单号SF1580489256312",
            "身份证 110105199003071234",
            "验证码 583920",
            "学费15804892563元",
            "12345678901",
            "4008001234",
            "400-800-1234",
            "2024-03-15 14:30",
            "01000000550100676775354346706914",
            "10086100861",
        ] {
            assert_eq!(found(text), vec![], "{text}");
        }
    }

    #[test]
    fn landlines_qq_wechat_and_email() {
        assert_eq!(found("座机 0351-7654321"), one(ContactKind::Tel, "0351-7654321"));
        assert_eq!(found("(0351)7654321"), one(ContactKind::Tel, "0351-7654321"));
        assert_eq!(found("010 88886666"), one(ContactKind::Tel, "010-88886666"));
        assert_eq!(found("我QQ 12345678"), one(ContactKind::Qq, "12345678"));
        assert_eq!(found("扣扣是987654321"), one(ContactKind::Qq, "987654321"));
        assert_eq!(found("微信：abc_123"), one(ContactKind::Weixin, "abc_123"));
        assert_eq!(found("加我vx zhang-san88 谢谢"), one(ContactKind::Weixin, "zhang-san88"));
        assert_eq!(found("wxid88886"), one(ContactKind::Weixin, "wxid88886"));
        assert_eq!(found("hello123 我想问一下"), vec![]);
        assert_eq!(found("邮箱 li.ming@example.com"), one(ContactKind::Email, "li.ming@example.com"));
        assert_eq!(found("12345678@qq.com"), one(ContactKind::Email, "12345678@qq.com"));
        assert_eq!(
            found("微信就是手机号 13912345678"),
            vec![(ContactKind::Weixin, "13912345678".to_string()), (ContactKind::Mobile, "13912345678".to_string())]
        );
    }

    #[test]
    fn two_numbers_in_one_message() {
        assert_eq!(
            found("13812345678 或者 13987654321"),
            vec![(ContactKind::Mobile, "13812345678".to_string()), (ContactKind::Mobile, "13987654321".to_string())]
        );
        assert_eq!(
            found("13812345678 13987654321"),
            vec![(ContactKind::Mobile, "13812345678".to_string()), (ContactKind::Mobile, "13987654321".to_string())]
        );
    }

    #[test]
    fn numbers_split_over_two_messages() {
        assert_eq!(split_mobile("我的号码 158 0489", "2563"), Some("15804892563".into()));
        assert_eq!(split_mobile("15804892563", "2563"), None);
        assert_eq!(split_mobile("学费 3800", "元"), None);
    }
}
