//! The decoding rules of push-spec.md, one by one, on cards written the way the vendor sends
//! them: Chinese text, escaped slashes, duplicate keys, keys with stray spaces, bare long
//! numbers, zone-less China times, raw control characters, batches, forms and multipart.
//!
//! `cards/vendor-example-as-printed.json` is the example of the vendor's note
//! (`easyliao-crm-push.original.md`) byte for byte, typographic quotes, no-break space and
//! missing comma included.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use xiansuo_domain::{Card, Message, Sender};
use xiansuo_push::{DecodeError, DecodedCard, DecodedPush, SourceRules, decode_push, json};

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

const VENDOR_EXAMPLE_AS_PRINTED: &str = include_str!("cards/vendor-example-as-printed.json");
const SOGOU_MOBILE_LEAD: &str = include_str!("cards/sogou-mobile-lead.json");

/// The visitor id of the vendor's example card.
const EXAMPLE_VISITOR: &str = "01000000013100635537156211197954";
/// The `from_id` in the example's transcript: 32 digits, but not the card's visitor id.
const EXAMPLE_FROM_VISITOR: &str = "01000000550100676775354346706914";
/// A WeChat openid: 28 characters of letters, digits, `_` and `-`, beginning with `o`.
const OPENID: &str = "oWx7a1b2c3d4e5f6g7h8i9j0kLmN";

// ---------------------------------------------------------------------------------------------
// Helpers

fn no_rules() -> SourceRules {
    SourceRules::default()
}

fn rules(accept_types: &[&str], field_map: &[(&str, &str)]) -> SourceRules {
    SourceRules::new(
        accept_types.iter().map(|t| t.to_string()).collect(),
        field_map.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .expect("valid rules")
}

fn decode_with(body: &str, content_type: Option<&str>, rules: &SourceRules) -> DecodedPush {
    match decode_push(body.as_bytes(), content_type, rules) {
        Ok(push) => push,
        Err(e) => panic!("decode failed: {e}\n{e:?}\nbody: {body}"),
    }
}

fn decode_err(body: &str, content_type: Option<&str>, rules: &SourceRules) -> DecodeError {
    match decode_push(body.as_bytes(), content_type, rules) {
        Ok(push) => panic!("expected an error, decoded {push:#?}"),
        Err(e) => e,
    }
}

/// The only card of a body, which must be accepted.
fn decoded_card(body: &str) -> DecodedCard {
    decoded_card_with(body, JSON, &no_rules())
}

fn decoded_card_with(body: &str, content_type: Option<&str>, rules: &SourceRules) -> DecodedCard {
    let push = decode_with(body, content_type, rules);
    assert_eq!(push.cards.len(), 1, "{push:#?}");
    let card = push.cards.into_iter().next().unwrap();
    assert!(!card.ignored, "{card:#?}");
    card
}

fn card(body: &str) -> Card {
    decoded_card(body).card
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)
}

fn fields(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn extra(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// (recorder_id, sender) of every message, in order.
fn senders(card: &Card) -> Vec<(&str, Sender)> {
    card.messages.iter().map(|m| (m.recorder_id.as_str(), m.sender)).collect()
}

fn recorder_ids(card: &Card) -> Vec<&str> {
    card.messages.iter().map(|m| m.recorder_id.as_str()).collect()
}

/// A JSON string literal for `s`.
fn js(s: &str) -> String {
    json::Json::String(s.to_string()).to_json_text()
}

/// Url-encodes a value the way Java's `URLEncoder.encode(value, "utf-8")` does (the vendor's
/// `httpForm` bodies): a space is `+`, only letters, digits and `*-._` stay as they are.
fn java_url_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A form body as the vendor's template code builds it: keys as they are, values url-encoded.
fn vendor_form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", java_url_encode(v))).collect::<Vec<_>>().join("&")
}

/// The three required keys, for cards that test something else.
const IDS: &str = r#""visitorStaticId":"01000000013100635537156211197954","companyId":"72000123","chatId":"348027659""#;

// ---------------------------------------------------------------------------------------------
// The vendor's own example

/// The example with its typographic quotes made plain and the missing comma before
/// `currentChatJsonDetail` added. The no-break space (U+00A0) after its first colon stays: the
/// reader takes it (and U+3000, and a BOM) as white space between tokens.
fn example_repaired() -> String {
    assert_eq!(VENDOR_EXAMPLE_AS_PRINTED.matches('\u{A0}').count(), 1, "the example has one no-break space");
    let quotes = VENDOR_EXAMPLE_AS_PRINTED.matches(['\u{201C}', '\u{201D}']).count();
    assert_eq!(quotes, 8, "the example has 8 typographic quotes");
    let plain = VENDOR_EXAMPLE_AS_PRINTED.replace(['\u{201C}', '\u{201D}'], "\"");
    let missing_comma = "\"createUserRealName \":\"\"\n";
    assert_eq!(plain.matches(missing_comma).count(), 1);
    plain.replacen(missing_comma, "\"createUserRealName \":\"\",\n", 1)
}

#[test]
fn vendor_example_fixture_keeps_the_notes_quirks() {
    // The fixture must stay the example as printed: spot-check what makes it what it is.
    assert!(VENDOR_EXAMPLE_AS_PRINTED.starts_with("{\n\n\u{201C}visitorStaticId\u{201D}:\u{A0}\""));
    assert!(VENDOR_EXAMPLE_AS_PRINTED.contains("\u{201C}userId\u{201D}:\u{201D}AI-omg122TianA\u{201D},"));
    assert!(
        VENDOR_EXAMPLE_AS_PRINTED.contains("\"createUserRealName \":\"\"\n\n\u{201C}currentChatJsonDetail\u{201D}:[")
    );
    assert!(VENDOR_EXAMPLE_AS_PRINTED.contains(r#""chatURL":"http:\/\/m.xxx.com\/zt\/hbtd.html?"#));
}

#[test]
fn vendor_example_as_printed_is_invalid_json_pointing_at_the_first_typographic_quote() {
    for content_type in [JSON, Some("application/json;charset=utf-8"), Some("text/plain"), None] {
        let err = decode_err(VENDOR_EXAMPLE_AS_PRINTED, content_type, &no_rules());
        let DecodeError::InvalidJson(json_err) = &err else {
            panic!("expected InvalidJson for {content_type:?}, got {err:?}");
        };
        // Line 1 is `{`, line 2 is blank, line 3 starts with `“visitorStaticId”`.
        assert_eq!((json_err.line, json_err.column), (3, 1), "{err}");
        assert!(json_err.message.contains("U+201C"), "{err}");
        assert!(json_err.message.contains("typographic quote"), "{err}");
        assert!(err.is_malformed());
        assert!(err.to_string().contains("line 3, column 1"), "{err}");
    }
}

#[test]
fn vendor_example_quotes_only_repaired_breaks_at_the_missing_comma() {
    let plain = VENDOR_EXAMPLE_AS_PRINTED.replace(['\u{201C}', '\u{201D}'], "\"");
    let err = decode_err(&plain, JSON, &no_rules());
    let DecodeError::InvalidJson(json_err) = &err else { panic!("{err:?}") };
    let line = plain.lines().position(|l| l.starts_with("\"currentChatJsonDetail\"")).unwrap() + 1;
    assert_eq!((json_err.line, json_err.column), (line, 1), "{err}");
    assert!(json_err.message.contains("createUserRealName"), "{err}");
}

#[test]
fn vendor_example_repaired_lacks_the_required_company_id_and_chat_id() {
    // The note's example has neither companyId nor chatId, both required by the same note.
    let err = decode_err(&example_repaired(), JSON, &no_rules());
    assert_eq!(err, DecodeError::MissingField { item: None, vendor_key: "companyId", key: "company_id" });
    assert!(err.to_string().contains("companyId"), "{err}");
    assert!(!err.to_string().contains("item"), "{err}");
    assert!(!err.is_malformed());

    let with_company = example_repaired().replacen("{\n", "{\"companyId\":72000123,\n", 1);
    let err = decode_err(&with_company, JSON, &no_rules());
    assert_eq!(err, DecodeError::MissingField { item: None, vendor_key: "chatId", key: "chat_id" });
}

#[test]
fn vendor_example_repaired_decodes_with_the_expected_values() {
    let body = example_repaired().replacen("{\n", "{\"companyId\":72000123,\"chatId\":348027659,\n", 1);
    let decoded = decoded_card(&body);
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    let card = decoded.card;
    assert_eq!(
        card.fields,
        fields(&[
            ("visitor_static_id", EXAMPLE_VISITOR),
            ("company_id", "72000123"),
            ("chat_id", "348027659"),
            ("name", "太原市6283"),
            ("mobile", "13355556666"),
            // "tel":"" is empty: absent.
            ("qq", "6666666"),
            ("weixin", "xxxxxx"),
            ("chat_url", "http://m.xxx.com/zt/hbtd.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi"),
            // Two firstUrl: the last non-empty one wins.
            ("first_url", "http://m.tyomick.com/zt/hbtd.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi"),
            ("user_id", "AI-omg122TianA"),
            ("keyword", "培训学校"),
            ("user_real_name", "机器人"),
            ("search_host", "wap.sogou.com"),
            ("province", "山西省"),
            ("city", "太原市"),
            // "extColumn1":"223.104.14.58" then "extColumn1":"": the empty one erases nothing.
            ("ext_column_1", "223.104.14.58"),
            // extColumn2…7, "schoolName ", "subjectName ", "createUserRealName " are empty.
        ])
    );
    // 2020-03-28 05:59:02 China time.
    assert_eq!(card.times, BTreeMap::from([("create_time", utc("2020-03-27T21:59:02Z"))]));
    assert!(card.extra.is_empty(), "{:?}", card.extra);

    let message = |recorder_id: &str, from_id: &str, sender, text: &str, time: &str| Message {
        recorder_id: recorder_id.into(),
        chat_id: Some("348027659".into()),
        sender,
        from_id: Some(from_id.into()),
        message: text.into(),
        kind: Some("RECORD_RECORD".into()),
        create_time: Some(utc(time)),
        extra: BTreeMap::new(),
    };
    // from_id 0100…6914 is not the card's visitorStaticId (0100…7954), but it is 32 digits:
    // a vendor visitor id, so the visitor. hkzyzs-kf is the agent. Three visitor messages.
    assert_eq!(
        card.messages,
        vec![
            message("1854094590", EXAMPLE_FROM_VISITOR, Sender::Visitor, "111", "2020-04-13T08:49:47Z"),
            message("1854098812", "hkzyzs-kf", Sender::Staff, "111", "2020-04-13T08:49:54Z"),
            message("1854098946", EXAMPLE_FROM_VISITOR, Sender::Visitor, "我的手机号是", "2020-04-13T08:49:58Z"),
            message("1854099156", EXAMPLE_FROM_VISITOR, Sender::Visitor, "15804892563", "2020-04-13T08:50:04Z"),
        ]
    );
    assert_eq!(card.messages.iter().filter(|m| m.sender == Sender::Visitor).count(), 3);
}

// ---------------------------------------------------------------------------------------------
// A realistic card

#[test]
fn sogou_mobile_lead_decodes_every_quirk() {
    let decoded = decoded_card(SOGOU_MOBILE_LEAD);
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    let card = decoded.card;
    assert_eq!(
        card.fields,
        fields(&[
            ("visitor_static_id", EXAMPLE_VISITOR),
            ("company_id", "72000123"),
            ("chat_id", "433328278485408768"),
            ("card_type", "转线索"),
            ("name", "王女士"),
            ("mobile", "13355556666"),
            ("weixin", "wxid_k2n7x9p3q1"),
            ("sex", "女"),
            ("ext_column_1", "223.104.14.58"),
            ("ext_column_2", "想了解周末班"),
            ("ipv6", "240e:3b0:1a2b::5"),
            ("ip", "223.104.14.58"),
            ("device_type", "phone"),
            ("search_engine", "搜狗"),
            ("keyword", "太原 会计 培训学校"),
            ("search_host", "wap.sogou.com"),
            ("chat_url", "http://m.xxx.com/zt/hbtd.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi"),
            ("refer", "https://wap.sogou.com/web/searchList.jsp?keyword=%E4%BC%9A%E8%AE%A1%E5%9F%B9%E8%AE%AD",),
            ("first_url", "http://m.xxx.com/zt/hbtd.html?from=sogou"),
            ("country", "中国"),
            ("province", "山西省"),
            ("city", "太原市"),
            ("school_name", "太原校区"),
            ("subject_name", "会计实操"),
            ("ntag_id", "1024"),
            ("ntag_name", "有效咨询"),
            ("ntag_message", "留了手机号，意向强"),
            ("user_id", "hkzyzs-kf"),
            ("user_real_name", "张老师"),
            ("create_user_id", "hkzyzs-kf"),
            ("create_user_real_name", "张老师"),
            ("bidding_word", "太原会计培训"),
            ("promotion_id", "88"),
            ("site_id", "3"),
            ("site_name", "太原站"),
            ("company_name", "太原某某职业培训学校"),
        ])
    );
    assert_eq!(
        card.times,
        BTreeMap::from([
            ("create_time", utc("2020-03-27T21:59:02Z")),
            ("edit_time", utc("2020-03-27T22:00:00Z")),
            ("allocation_time", utc("2020-03-27T21:59:02.123Z")),
        ])
    );
    assert_eq!(card.extra, extra(&[("crmzdy_88271217", "已加微信"), ("hideMobile", "1"), ("copyWxTimes", "2")]));
    assert_eq!(
        senders(&card),
        vec![
            ("433328278485408769", Sender::Staff),
            ("433328278485408770", Sender::Visitor),
            ("433328278485408771", Sender::Staff),
            ("433328278485408772", Sender::Visitor),
        ]
    );
    let greeting = &card.messages[0];
    assert_eq!(greeting.kind.as_deref(), Some("RECORD_RICH_TEXT"));
    assert_eq!(greeting.message, "<p>您好，欢迎咨询<b>太原会计培训</b></p>");
    assert_eq!(greeting.chat_id.as_deref(), Some("433328278485408768"));
    assert_eq!(greeting.create_time, Some(utc("2020-03-27T21:57:40Z")));
}

// ---------------------------------------------------------------------------------------------
// Keys

#[test]
fn every_key_of_the_vendor_table_has_its_canonical_key() {
    // push-spec.md "Fields", with the keys spelled as the vendor's table prints them.
    let mut table: Vec<(String, &'static str)> = [
        ("visitorStaticId", "visitor_static_id"),
        ("companyId", "company_id"),
        ("chatId", "chat_id"),
        ("name", "name"),
        ("email", "email"),
        ("weixin", "weixin"),
        ("area", "area"),
        ("qq", "qq"),
        ("sex", "sex"),
        ("userId", "user_id"),
        ("createUserId", "create_user_id"),
        ("deviceType", "device_type"),
        ("searchEngine", "search_engine"),
        ("keyword", "keyword"),
        ("chatURL", "chat_url"),
        ("refer", "refer"),
        ("searchHost", "search_host"),
        ("firstUrl", "first_url"),
        ("tel", "tel"),
        ("mobile", "mobile"),
        ("country", "country"),
        ("province", "province"),
        ("city", "city"),
        ("siteId", "site_id"),
        ("siteName", "site_name"),
        ("companyName", "company_name"),
        ("ipv 6", "ipv6"),
        ("ip", "ip"),
        ("promotionId", "promotion_id"),
        ("type", "card_type"),
        ("ntagId", "ntag_id"),
        ("ntagName", "ntag_name"),
        ("ntagMessage", "ntag_message"),
        ("subjectName", "subject_name"),
        ("schoolName", "school_name"),
        ("userRealName", "user_real_name"),
        ("createUserRealName", "create_user_real_name"),
        ("editUserRealName", "edit_user_real_name"),
        ("note", "note"),
        ("userNo", "user_no"),
        ("editUserId", "edit_user_id"),
        ("editUserRealNam", "edit_user_display_name"),
        ("biddingWord", "bidding_word"),
        ("groupId", "group_id"),
    ]
    .into_iter()
    .map(|(k, c)| (k.to_string(), c))
    .collect();
    let ext: [&'static str; 15] = [
        "ext_column_1",
        "ext_column_2",
        "ext_column_3",
        "ext_column_4",
        "ext_column_5",
        "ext_column_6",
        "ext_column_7",
        "ext_column_8",
        "ext_column_9",
        "ext_column_10",
        "ext_column_11",
        "ext_column_12",
        "ext_column_13",
        "ext_column_14",
        "ext_column_15",
    ];
    for (n, canonical) in ext.into_iter().enumerate() {
        table.push((format!("extColumn {}", n + 1), canonical));
    }
    let mut body = String::from("{");
    for (i, (key, _)) in table.iter().enumerate() {
        body.push_str(&format!("{}:{},", js(key), js(&format!("值{i}"))));
    }
    body.push_str(
        r#""createTime":"2020-03-28 05:59:02","editTime":"2020-03-28 06:00:00","allocationTime":"2020-03-28 06:01:00","currentChatJsonDetail":[]}"#,
    );
    let card = card(&body);
    let expected: BTreeMap<&'static str, String> =
        table.iter().enumerate().map(|(i, (_, c))| (*c, format!("值{i}"))).collect();
    assert_eq!(card.fields, expected);
    assert_eq!(
        card.times,
        BTreeMap::from([
            ("create_time", utc("2020-03-27T21:59:02Z")),
            ("edit_time", utc("2020-03-27T22:00:00Z")),
            ("allocation_time", utc("2020-03-27T22:01:00Z")),
        ])
    );
    assert!(card.extra.is_empty(), "{:?}", card.extra);
    assert!(card.messages.is_empty());
}

#[test]
fn every_key_of_the_newer_parameter_list_has_its_canonical_key() {
    let table = [
        ("district", "district"),
        ("groupName", "group_name"),
        ("promotionName", "promotion_name"),
        ("ssid", "ssid"),
        ("tgAdProvider", "tg_ad_provider"),
        ("tgAdAgent", "tg_ad_agent"),
        ("tgAdAccount", "tg_ad_account"),
        ("tgAdAccountName", "tg_ad_account_name"),
        ("tgPlanId", "tg_plan_id"),
        ("tgPlanName", "tg_plan_name"),
        ("tgGroupId", "tg_group_id"),
        ("tgGroupName", "tg_group_name"),
        ("tgCreativeId", "tg_creative_id"),
        ("tgCreativeName", "tg_creative_name"),
        ("tgKeywordId", "tg_keyword_id"),
        ("tgKeywordName", "tg_keyword_name"),
        ("bcpAduserId", "bcp_aduser_id"),
        ("lastLandingPage", "last_landing_page"),
        ("repName", "rep_name"),
        ("spreadFlag", "spread_flag"),
        ("visitor_source_id", "visitor_source_id"),
    ];
    let mut body = format!("{{{IDS}");
    for (i, (key, _)) in table.iter().enumerate() {
        body.push_str(&format!(",{}:{}", js(key), js(&format!("值{i}"))));
    }
    body.push('}');
    let card = card(&body);
    for (i, (key, canonical)) in table.iter().enumerate() {
        assert_eq!(card.get(canonical), Some(format!("值{i}").as_str()), "{key}");
    }
    assert_eq!(card.fields.len(), table.len() + 3);
    assert!(card.extra.is_empty(), "{:?}", card.extra);
}

#[test]
fn key_spellings_match_ignoring_white_space_case_underscore_and_dash() {
    let groups: &[(&str, &[&str])] = &[
        (
            "ext_column_1",
            &[
                "extColumn 1",
                "extColumn1",
                "extcolumn1",
                "EXTCOLUMN1",
                "extColum1",
                "ext_column_1",
                " extColumn1 ",
                "EXT-COLUMN-1",
                "extColumn1\t",
            ],
        ),
        ("ext_column_7", &["extColum7", "extColumn 7", "extColumn7"]),
        ("chat_url", &["chatURL", "chatUrl", "chat_url", "CHATURL"]),
        ("ipv6", &["ipv 6", "ipv6", "IPV6"]),
        ("tg_plan_name", &["tgPlanName", "tg_plan_name", "TG-PLAN-NAME", "tg plan name"]),
        ("school_name", &["schoolName ", " schoolName", "school_name"]),
        ("edit_user_display_name", &["editUserRealNam", "edit_user_real_nam"]),
        ("edit_user_real_name", &["editUserRealName", "edit_user_real_name"]),
    ];
    for (canonical, spellings) in groups {
        for spelling in *spellings {
            let body = format!("{{{IDS},{}:\"太原\"}}", js(spelling));
            let card = card(&body);
            assert_eq!(card.get(canonical), Some("太原"), "{spelling:?}");
            assert!(card.extra.is_empty(), "{spelling:?}: {:?}", card.extra);
        }
    }
    // The required keys in snake case and upper case are still a card.
    let card =
        card(r#"{"visitor_static_id":"01000000013100635537156211197954","COMPANY_ID":72000123,"chat-id":"348027659"}"#);
    assert_eq!(card.visitor_static_id(), Some(EXAMPLE_VISITOR));
    assert_eq!(card.company_id(), Some("72000123"));
    assert_eq!(card.chat_id(), Some("348027659"));
}

#[test]
fn snake_case_keys_and_pull_api_spellings_map_to_canonical_keys() {
    let card = card(&format!(
        r#"{{{IDS},
        "tg_plan_name":"太原-会计-周末班",
        "tg_ad_account":"",
        "tgAdAccountId":"30098765",
        "tg_keyword_name":"太原会计培训哪家好",
        "extColum1":"223.104.14.58",
        "extColum10":"周末班",
        "referPage":"https:\/\/m.baidu.com\/s?word=%E4%BC%9A%E8%AE%A1",
        "bcpBiddingWord":"会计培训",
        "msn":"wx_liuyang88",
        "createTimeStamp":1585346342,
        "visitorLocationProvince":"山西",
        "visitorLocationCity":"太原",
        "chatUrl":"https:\/\/m.xxx.com\/kj\/"
        }}"#
    ));
    assert_eq!(card.get("tg_plan_name"), Some("太原-会计-周末班"));
    assert_eq!(card.get("tg_ad_account"), Some("30098765"));
    assert_eq!(card.get("tg_keyword_name"), Some("太原会计培训哪家好"));
    assert_eq!(card.get("ext_column_1"), Some("223.104.14.58"));
    assert_eq!(card.get("ext_column_10"), Some("周末班"));
    assert_eq!(card.get("refer"), Some("https://m.baidu.com/s?word=%E4%BC%9A%E8%AE%A1"));
    assert_eq!(card.get("bidding_word"), Some("会计培训"));
    assert_eq!(card.get("weixin"), Some("wx_liuyang88"));
    assert_eq!(card.get("province"), Some("山西"));
    assert_eq!(card.get("city"), Some("太原"));
    assert_eq!(card.get("chat_url"), Some("https://m.xxx.com/kj/"));
    assert_eq!(card.times.get("create_time"), Some(&utc("2020-03-27T21:59:02Z")));
    assert!(card.extra.is_empty(), "{:?}", card.extra);
}

#[test]
fn duplicate_keys_last_non_empty_value_wins() {
    let card = card(&format!(
        r#"{{{IDS},
        "name":"太原市6283","name":"王女士","name":"","name":"   ","name":null,
        "mobile":"13355556666","Mobile ":"","MOBILE":"13912345678","mobile":"",
        "extColumn1":"223.104.14.58","extColumn 1":"","extColum1":null,
        "firstUrl":"","firstUrl":"http:\/\/m.xxx.com\/a","firstUrl":"http:\/\/m.xxx.com\/b",
        "qq":"","qq":"  ",
        "tel":"  0351-1234567  "
        }}"#
    ));
    assert_eq!(card.get("name"), Some("王女士"));
    assert_eq!(card.get("mobile"), Some("13912345678"));
    assert_eq!(card.get("ext_column_1"), Some("223.104.14.58"));
    assert_eq!(card.get("first_url"), Some("http://m.xxx.com/b"));
    assert_eq!(card.get("qq"), None, "an empty or blank value is no value");
    assert_eq!(card.get("tel"), Some("0351-1234567"), "text values are trimmed");
}

#[test]
fn unknown_keys_go_to_extra_under_their_trimmed_key() {
    let decoded = decoded_card(&format!(
        r#"{{{IDS},
        " crmzdy_88271217 ":"已加微信",
        "crmzdy_88271217":"",
        "hideMobile":1,
        "hideMobile":null,
        "copyWxTimes":"3",
        "copyWxTimes":"  ",
        "skinName":"",
        "意向课程":"会计实操",
        "bigId":12345678901234567890123,
        "flag":true,
        "formData":{{"课程":"会计","班型":["周末班","晚班"],"url":"http:\/\/m.xxx.com\/"}},
        "tags":["高意向","已加微信"]
        }}"#
    ));
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    let mut extra = decoded.card.extra;
    let form_data = extra.remove("formData").expect("formData kept");
    let tags = extra.remove("tags").expect("tags kept");
    assert_eq!(
        extra,
        self::extra(&[
            ("crmzdy_88271217", "已加微信"),
            ("hideMobile", "1"),
            ("copyWxTimes", "3"),
            ("意向课程", "会计实操"),
            ("bigId", "12345678901234567890123"),
            ("flag", "true"),
        ])
    );
    // Structured values are kept as JSON text that reads back to the same value.
    assert_eq!(
        json::parse(&form_data).unwrap(),
        json::parse(r#"{"课程":"会计","班型":["周末班","晚班"],"url":"http://m.xxx.com/"}"#).unwrap()
    );
    assert_eq!(json::parse(&tags).unwrap(), json::parse(r#"["高意向","已加微信"]"#).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Values

#[test]
fn long_numeric_ids_keep_their_exact_digits() {
    let card = card(
        r#"{"visitorStaticId":10000000013100635537156211197954,"companyId":72000123,
        "chatId":433328278485408768,"ntagId":12345678901234567890,"siteId":0,"promotionId":-1,
        "groupId":9007199254740993,
        "currentChatJsonDetail":[{"chat_id":433328278485408768,"recorder_id":433328278485408769,
          "from_id":10000000013100635537156211197954,"message":123456789012345678901234567890}]}"#,
    );
    assert_eq!(card.visitor_static_id(), Some("10000000013100635537156211197954"));
    assert_eq!(card.company_id(), Some("72000123"));
    assert_eq!(card.chat_id(), Some("433328278485408768"));
    assert_eq!(card.get("ntag_id"), Some("12345678901234567890"));
    assert_eq!(card.get("site_id"), Some("0"), "0 is a value, not an empty one");
    assert_eq!(card.get("promotion_id"), Some("-1"));
    // 2^53 + 1: the first integer a double cannot hold.
    assert_eq!(card.get("group_id"), Some("9007199254740993"));
    let m = &card.messages[0];
    assert_eq!(m.recorder_id, "433328278485408769");
    assert_eq!(m.chat_id.as_deref(), Some("433328278485408768"));
    assert_eq!(m.from_id.as_deref(), Some("10000000013100635537156211197954"));
    assert_eq!(m.message, "123456789012345678901234567890");
    assert_eq!(m.sender, Sender::Visitor);
    // What a float would have made of the id.
    let as_float = m.recorder_id.parse::<f64>().unwrap();
    assert_ne!(format!("{}", as_float as u64), m.recorder_id);
}

#[test]
fn escaped_slashes_and_unicode_escapes_are_read() {
    let card = card(&format!(
        r#"{{{IDS},"chatURL":"http:\/\/m.xxx.com\/zt\/hbtd.html?sgyd1&PP&key=weizhi",
        "name":"\u592a\u539f\u5e02","note":"\ud83d\ude00 \"好\" \\ 收到"}}"#
    ));
    assert_eq!(card.get("chat_url"), Some("http://m.xxx.com/zt/hbtd.html?sgyd1&PP&key=weizhi"));
    assert_eq!(card.get("name"), Some("太原市"));
    assert_eq!(card.get("note"), Some("😀 \"好\" \\ 收到"));
}

#[test]
fn raw_line_breaks_and_tabs_inside_strings_are_read_as_if_escaped() {
    // The vendor templates values into the body as text: a note typed over two lines arrives
    // with a raw line break inside the JSON string.
    let body = format!(
        "{{{IDS},\"note\":\"周六上午方便接电话\n不要打座机\t谢谢\",\"地址\":\"太原市\r\n小店区\",\
         \"currentChatJsonDetail\":[{{\"recorder_id\":\"1\",\"from_id\":\"hkzyzs-kf\",\"message\":\"第一行\n第二行\"}}],\
         \"chatDetailSL\":\"[{{\\\"recorder_id\\\":\\\"2\\\",\\\"message\\\":\\\"甲\n乙\\\"}}]\"}}"
    );
    assert!(body.contains("接电话\n不要"), "the body holds a raw line break");
    let card = card(&body);
    assert_eq!(card.get("note"), Some("周六上午方便接电话\n不要打座机\t谢谢"));
    assert_eq!(card.extra.get("地址").map(String::as_str), Some("太原市\r\n小店区"));
    assert_eq!(card.messages[0].message, "第一行\n第二行");
    assert_eq!(card.messages[1].message, "甲\n乙");
}

#[test]
fn times_are_instants_zone_less_as_china_time_numbers_as_epoch_seconds_or_milliseconds() {
    let card1 = card(&format!(
        r#"{{{IDS},"createTime":"2020-03-28 05:59:02","editTime":"1585346400","allocationTime":1585346342123}}"#
    ));
    assert_eq!(
        card1.times,
        BTreeMap::from([
            ("create_time", utc("2020-03-27T21:59:02Z")),
            ("edit_time", utc("2020-03-27T22:00:00Z")),
            ("allocation_time", utc("2020-03-27T21:59:02.123Z")),
        ])
    );

    // createTimeStamp is the same field in epoch seconds; "0" is the vendor's "not set".
    let card2 = card(&format!(
        r#"{{{IDS},"createTimeStamp":1585346342,"createTime":"","editTime":"2020-03-28T05:59:02+08:00","allocationTime":"0","allocationTime":0}}"#
    ));
    assert_eq!(
        card2.times,
        BTreeMap::from([("create_time", utc("2020-03-27T21:59:02Z")), ("edit_time", utc("2020-03-27T21:59:02Z")),])
    );

    // A time that is no time is kept in extra with a warning, and erases no earlier time.
    let decoded = decoded_card(&format!(r#"{{{IDS},"editTime":"2020-03-28 05:59:02","editTime":"昨天下午"}}"#));
    assert_eq!(decoded.card.times.get("edit_time"), Some(&utc("2020-03-27T21:59:02Z")));
    assert_eq!(decoded.card.extra, extra(&[("editTime", "昨天下午")]));
    assert_eq!(decoded.warnings.len(), 1);
    assert!(decoded.warnings[0].contains("editTime"), "{:?}", decoded.warnings);

    // Message times alike.
    let card3 = card(&format!(
        r#"{{{IDS},"currentChatJsonDetail":[
        {{"recorder_id":1,"create_time":"2020-04-13 16:49:47","message":"a"}},
        {{"recorder_id":2,"create_time":1586767787000,"message":"b"}},
        {{"recorder_id":3,"create_time":"1586767787","message":"c"}},
        {{"recorder_id":4,"create_time":"刚刚","message":"d"}}]}}"#
    ));
    let expected = Some(utc("2020-04-13T08:49:47Z"));
    assert_eq!(card3.messages[0].create_time, expected);
    assert_eq!(card3.messages[1].create_time, expected);
    assert_eq!(card3.messages[2].create_time, expected);
    assert_eq!(card3.messages[3].create_time, None);
    assert_eq!(card3.messages[3].extra, extra(&[("create_time", "刚刚")]));
}

#[test]
fn extreme_times_do_not_panic() {
    for time in [
        "\"-262143-01-01 00:00:00\"",
        "\"262142-12-31 23:59:59\"",
        "\"0000-01-01 00:00:00\"",
        "\"9999-12-31T23:59:59-23:59\"",
        "\"9999999999\"",
        "\"9999999999999\"",
        "99999999999999999999",
        "-1",
        "1e400",
        "\"2020-02-30 10:00:00\"",
    ] {
        let body = format!(
            r#"{{{IDS},"createTime":{time},"currentChatJsonDetail":[{{"recorder_id":1,"create_time":{time}}}]}}"#
        );
        let card = card(&body);
        assert_eq!(card.messages.len(), 1, "{time}");
    }
}

// ---------------------------------------------------------------------------------------------
// Transcript

#[test]
fn sender_is_sender_type_when_given_otherwise_classified_by_from_id() {
    // A non-numeric visitor id, so that "equal to visitorStaticId" is tested on its own.
    assert_eq!(OPENID.len(), 28);
    let openid_27 = &OPENID[..27];
    let body = format!(
        r#"{{"visitorStaticId":"v-8f3a2c","companyId":"72000123","chatId":"348027659",
        "currentChatJsonDetail":[
          {{"recorder_id":"1","from_id":"v-8f3a2c","message":"我想报名"}},
          {{"recorder_id":"2","from_id":"{EXAMPLE_FROM_VISITOR}","message":"32 位访客 ID"}},
          {{"recorder_id":"3","from_id":"1234567890123456","message":"16 位数字"}},
          {{"recorder_id":"4","from_id":"123456789012345","message":"15 位数字"}},
          {{"recorder_id":"5","from_id":"{OPENID}","message":"微信访客"}},
          {{"recorder_id":"6","from_id":"{openid_27}","message":"27 个字符"}},
          {{"recorder_id":"7","from_id":"hkzyzs-kf","message":"您好"}},
          {{"recorder_id":"8","from_id":"AI-omg122TianA","message":"机器人"}},
          {{"recorder_id":"9","message":"系统消息"}},
          {{"recorder_id":"10","from_id":"hkzyzs-kf","sender_type":"1","message":"类型说访客"}},
          {{"recorder_id":"11","from_id":"v-8f3a2c","sender_type":"0","message":"类型说客服"}},
          {{"recorder_id":"12","from_id":"hkzyzs-kf","sender_type":1,"message":"数字 1"}},
          {{"recorder_id":"13","from_id":"{EXAMPLE_FROM_VISITOR}","senderType":0,"message":"数字 0"}},
          {{"recorder_id":"14","from_id":10000000550100676775354346706914,"message":"裸数字 ID"}},
          {{"recorder_id":"15","from_id":" v-8f3a2c ","message":"带空格"}},
          {{"recorder_id":"16","from_id":"0123456789abcdef0123456789abcdef","message":"32 位十六进制"}},
          {{"recorder_id":"17","from_id":"10086","sender_type":"","message":"空类型"}}
        ]}}"#
    );
    let card = card(&body);
    use Sender::{Staff, Visitor};
    assert_eq!(
        senders(&card),
        vec![
            ("1", Visitor),
            ("2", Visitor),
            ("3", Visitor),
            ("4", Staff),
            ("5", Visitor),
            ("6", Staff),
            ("7", Staff),
            ("8", Staff),
            ("9", Staff),
            ("10", Visitor),
            ("11", Staff),
            ("12", Visitor),
            ("13", Staff),
            ("14", Visitor),
            ("15", Visitor),
            ("16", Staff),
            ("17", Staff),
        ]
    );
}

#[test]
fn unknown_sender_type_falls_back_to_from_id_and_is_kept() {
    let card = card(&format!(
        r#"{{{IDS},"currentChatJsonDetail":[
        {{"recorder_id":"1","from_id":"hkzyzs-kf","sender_type":"2","message":"?"}},
        {{"recorder_id":"2","from_id":"{EXAMPLE_VISITOR}","sender_type":"robot","message":"?"}}]}}"#
    ));
    assert_eq!(senders(&card), vec![("1", Sender::Staff), ("2", Sender::Visitor)]);
    assert_eq!(card.messages[0].extra, extra(&[("sender_type", "2")]));
    assert_eq!(card.messages[1].extra, extra(&[("sender_type", "robot")]));
}

#[test]
fn the_visitor_id_for_classification_is_the_whole_cards() {
    // visitorStaticId after the transcript, under a field_map rename.
    let rules = rules(&[], &[("访客ID", "visitor_static_id")]);
    let body = r#"{"currentChatJsonDetail":[{"recorder_id":"1","from_id":"v-8f3a2c","message":"你好"}],
        "companyId":"72000123","chatId":"348027659","访客ID":"v-8f3a2c"}"#;
    let card = decoded_card_with(body, JSON, &rules).card;
    assert_eq!(card.visitor_static_id(), Some("v-8f3a2c"));
    assert_eq!(senders(&card), vec![("1", Sender::Visitor)]);
}

#[test]
fn rich_text_and_other_message_types_are_kept_verbatim() {
    let body = format!(
        r#"{{"visitorStaticId":"{EXAMPLE_VISITOR}","companyId":"72000123","chatId":"433328278485408768","type":"转线索",
        "currentChatJsonDetail":[
          {{"recorder_id":433328278485408801,"chat_id":433328278485408768,"from_id":"hkzyzs-kf","sender_type":"0",
            "type":"RECORD_RICH_TEXT","create_time":"2020-04-13 16:49:47",
            "message":"<div class=\"greet\">您好！<br\/>请问想了解哪个课程？<\/div>"}},
          {{"recorder_id":433328278485408802,"chat_id":433328278485408768,"from_id":"{OPENID}",
            "type":"RECORD_RICH_TEXT","create_time":"2020-04-13 16:50:02",
            "message":"\n  <form class=\"el-card-form\"><input name=\"name\" placeholder=\"姓名\" value=\"刘洋\"><input name=\"mobile\" placeholder=\"手机号码\" value=\"13912345678\"><\/form>\n"}},
          {{"recorder_id":433328278485408803,"chat_id":433328278485408768,"from_id":"{OPENID}","sender_type":"1",
            "type":"RECORD_IMAGE","message":"https:\/\/img.easyliao.com\/2020\/04\/13\/a.png"}},
          {{"recorder_id":433328278485408804,"from_id":"{OPENID}","type":"RECORD_RECORD","message":"  好的 谢谢  "}}
        ]}}"#
    );
    let card = card(&body);
    let m = &card.messages;
    assert_eq!(m.len(), 4);
    assert_eq!(m[0].kind.as_deref(), Some("RECORD_RICH_TEXT"));
    assert_eq!(m[0].message, r#"<div class="greet">您好！<br/>请问想了解哪个课程？</div>"#);
    assert_eq!(m[0].sender, Sender::Staff);
    assert_eq!(
        m[1].message,
        "\n  <form class=\"el-card-form\"><input name=\"name\" placeholder=\"姓名\" value=\"刘洋\"><input name=\"mobile\" placeholder=\"手机号码\" value=\"13912345678\"></form>\n"
    );
    assert_eq!(m[1].sender, Sender::Visitor, "a WeChat openid is the visitor");
    assert_eq!(m[2].kind.as_deref(), Some("RECORD_IMAGE"));
    assert_eq!(m[2].message, "https://img.easyliao.com/2020/04/13/a.png");
    assert_eq!(m[3].message, "  好的 谢谢  ", "message text is verbatim, white space included");
}

#[test]
fn message_keys_in_the_pull_apis_spelling_and_empty_values_in_a_message() {
    let card = card(&format!(
        r#"{{{IDS},"currentChatJsonDetail":[
        {{"recordId":"433328278485408768","chatId":433328278485408000,"fromId":"hkzyzs-kf","senderType":0,
          "createTime":1586767787000,"message":"您好","type":"RECORD_RECORD",
          "msgId":"m-1","isRead":true,"message":"","fromId":"","type":null,"msgId":""}}]}}"#
    ));
    assert_eq!(
        card.messages,
        vec![Message {
            recorder_id: "433328278485408768".into(),
            chat_id: Some("433328278485408000".into()),
            sender: Sender::Staff,
            from_id: Some("hkzyzs-kf".into()),
            message: "您好".into(),
            kind: Some("RECORD_RECORD".into()),
            create_time: Some(utc("2020-04-13T08:49:47Z")),
            extra: extra(&[("msgId", "m-1"), ("isRead", "true")]),
        }]
    );
}

#[test]
fn transcript_given_as_a_json_string() {
    let transcript = format!(
        r#"[{{"chat_id":348027659,"create_time":"2020-04-13 16:49:47","from_id":"{EXAMPLE_FROM_VISITOR}","message":"111","recorder_id":1854094590,"type":"RECORD_RECORD"}},{{"chat_id":348027659,"create_time":"2020-04-13 16:49:54","from_id":"hkzyzs-kf","message":"111","recorder_id":1854098812,"type":"RECORD_RECORD"}}]"#
    );
    for value in [js(&transcript), js(&format!("\n  {transcript}\n"))] {
        let decoded = decoded_card(&format!("{{{IDS},\"currentChatJsonDetail\":{value}}}"));
        assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
        assert!(decoded.card.extra.is_empty(), "{:?}", decoded.card.extra);
        assert_eq!(senders(&decoded.card), vec![("1854094590", Sender::Visitor), ("1854098812", Sender::Staff)]);
    }
    // Empty in every way: no messages, nothing in extra.
    for value in [r#""""#, r#""  ""#, "null", "[]", r#""[]""#] {
        let decoded = decoded_card(&format!("{{{IDS},\"currentChatJsonDetail\":{value}}}"));
        assert!(decoded.card.messages.is_empty(), "{value}");
        assert!(decoded.card.extra.is_empty(), "{value}: {:?}", decoded.card.extra);
    }
}

#[test]
fn a_transcript_that_is_no_array_of_messages_goes_to_extra_with_a_warning() {
    for (value, kept) in [
        (r#""无""#, "无"),
        (r#""[{\"recorder_id\":1""#, r#"[{"recorder_id":1"#),
        (r#"{"list":[]}"#, r#"{"list":[]}"#),
        (r#"["你好"]"#, r#"["你好"]"#),
        ("42", "42"),
    ] {
        let decoded = decoded_card(&format!("{{{IDS},\"currentChatJsonDetail\":{value}}}"));
        assert!(decoded.card.messages.is_empty(), "{value}");
        assert_eq!(decoded.card.extra, extra(&[("currentChatJsonDetail", kept)]), "{value}");
        assert_eq!(decoded.warnings.len(), 1, "{value}");
        assert!(decoded.warnings[0].contains("currentChatJsonDetail"), "{:?}", decoded.warnings);
    }
}

#[test]
fn other_transcript_formats_are_unioned_when_they_are_arrays_of_messages() {
    let m = |id: u32, from: &str, text: &str| {
        format!(
            r#"{{"recorder_id":{id},"chat_id":348027659,"from_id":"{from}","message":"{text}","type":"RECORD_RECORD"}}"#
        )
    };
    let (m1, m2, m3, m4) = (
        m(1854094590, EXAMPLE_FROM_VISITOR, "111"),
        m(1854098812, "hkzyzs-kf", "您好"),
        m(1854098946, EXAMPLE_FROM_VISITOR, "我的手机号是"),
        m(1854099156, EXAMPLE_FROM_VISITOR, "15804892563"),
    );
    let body = format!(
        "{{{IDS},\"currentChatJsonDetail\":[{m1},{m2}],\"chatDetailSL\":[{m2},{m3}],\"chatDetailJsonAll\":{},\"chatDetailEC\":[],\"currentChatDetail\":\"\"}}",
        js(&format!("[{m3},{m4}]"))
    );
    let decoded = decoded_card(&body);
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    assert!(decoded.card.extra.is_empty(), "{:?}", decoded.card.extra);
    assert_eq!(
        senders(&decoded.card),
        vec![
            ("1854094590", Sender::Visitor),
            ("1854098812", Sender::Staff),
            ("1854098946", Sender::Visitor),
            ("1854099156", Sender::Visitor),
        ]
    );
}

#[test]
fn other_transcript_formats_that_are_not_messages_go_to_extra_verbatim() {
    let card = card(&format!(
        r#"{{{IDS},
        "currentChatJsonDetail":[{{"recorder_id":1,"from_id":"hkzyzs-kf","message":"您好"}}],
        "currentChatDetail":"访客：周末班多少钱\n客服：请留个电话",
        "chatDetailEC":{{"total":2,"list":"访客：你好|客服：您好"}},
        "chatDetailSL":["访客：你好","客服：您好"],
        "chatDetailJsonAll":"<p>访客：你好<\/p>"
        }}"#
    ));
    assert_eq!(recorder_ids(&card), vec!["1"]);
    let mut extra = card.extra;
    let ec = extra.remove("chatDetailEC").expect("chatDetailEC kept");
    let sl = extra.remove("chatDetailSL").expect("chatDetailSL kept");
    assert_eq!(
        extra,
        self::extra(&[
            ("currentChatDetail", "访客：周末班多少钱\n客服：请留个电话"),
            ("chatDetailJsonAll", "<p>访客：你好</p>"),
        ])
    );
    assert_eq!(json::parse(&ec).unwrap(), json::parse(r#"{"total":2,"list":"访客：你好|客服：您好"}"#).unwrap());
    assert_eq!(json::parse(&sl).unwrap(), json::parse(r#"["访客：你好","客服：您好"]"#).unwrap());
}

#[test]
fn arrays_of_objects_that_are_not_messages_go_to_extra() {
    // The shapes of formats one, two, three and five are not public: an array of objects that
    // carry neither a message nor a recorder id is no array of message objects.
    let ec = r#"[{"role":"访客","content":"周末班多少钱","time":"2020-04-13 16:49:47"},{"role":"客服","content":"请留个电话","time":"2020-04-13 16:49:54"}]"#;
    let decoded = decoded_card(&format!(
        r#"{{{IDS},"currentChatJsonDetail":[{{"recorder_id":1,"from_id":"hkzyzs-kf","message":"您好"}}],"chatDetailEC":{ec},"chatDetailSL":{}}}"#,
        js(ec)
    ));
    assert_eq!(recorder_ids(&decoded.card), vec!["1"], "{:#?}", decoded.card.messages);
    for key in ["chatDetailEC", "chatDetailSL"] {
        let kept = decoded.card.extra.get(key).unwrap_or_else(|| panic!("{key} kept in extra"));
        assert_eq!(json::parse(kept).unwrap(), json::parse(ec).unwrap(), "{key}");
    }
    // The same in the transcript's own key: kept in extra, with a warning.
    let decoded = decoded_card(&format!(r#"{{{IDS},"currentChatJsonDetail":{ec}}}"#));
    assert!(decoded.card.messages.is_empty(), "{:#?}", decoded.card.messages);
    assert!(decoded.card.extra.contains_key("currentChatJsonDetail"));
    assert_eq!(decoded.warnings.len(), 1, "{:?}", decoded.warnings);
}

#[test]
fn messages_are_kept_once_each_by_recorder_id() {
    let body = format!(
        r#"{{{IDS},
        "currentChatJsonDetail":[
          {{"recorder_id":1854094590,"from_id":"{EXAMPLE_FROM_VISITOR}","message":"111"}},
          {{"recorder_id":"1854094590","from_id":"{EXAMPLE_FROM_VISITOR}","message":"111"}},
          {{"chat_id":348027659,"from_id":"hkzyzs-kf","create_time":"2020-04-13 16:49:54","message":"您好"}},
          {{"chat_id":348027659,"from_id":"hkzyzs-kf","create_time":"2020-04-13 16:49:54","message":"您好"}},
          {{"chat_id":348027659,"from_id":"hkzyzs-kf","create_time":"2020-04-13 16:49:55","message":"请留电话"}}
        ],
        "currentChatJsonDetail":[{{"recorder_id":"1854094590","message":"111"}}]
        }}"#
    );
    let card1 = card(&body);
    let ids = recorder_ids(&card1);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], "1854094590");
    // Without a recorder id, a message gets a stable id from its content: the same message in a
    // later push collapses onto the first.
    assert!(ids[1].starts_with("h-") && ids[2].starts_with("h-"), "{ids:?}");
    assert_ne!(ids[1], ids[2]);
    let card2 = card(&body);
    assert_eq!(recorder_ids(&card2), ids);
}

// ---------------------------------------------------------------------------------------------
// Bodies: batches, content types, forms, multipart

const CARD_A: &str = r#"{"visitorStaticId":"01000000013100635537156211197954","companyId":72000123,"chatId":433328278485408768,"name":"王女士","mobile":"13355556666"}"#;
const CARD_B: &str = r#"{"visitorStaticId":"01000000550100676775354346706914","companyId":72000123,"chatId":433328278485408999,"name":"李先生","weixin":"wx_li"}"#;

#[test]
fn batch_bodies_array_data_records_and_items() {
    let expected = decode_with(&format!("[{CARD_A},{CARD_B}]"), JSON, &no_rules());
    assert_eq!(expected.cards.len(), 2);
    assert_eq!(expected.accepted(), 2);
    assert_eq!(expected.cards[0].card.get("name"), Some("王女士"));
    assert_eq!(expected.cards[1].card.get("name"), Some("李先生"));
    for body in [
        format!(r#"{{"data":[{CARD_A},{CARD_B}]}}"#),
        format!(r#"{{"records":[{CARD_A},{CARD_B}]}}"#),
        format!(r#"{{"items":[{CARD_A},{CARD_B}]}}"#),
        format!(r#"{{"code":0,"msg":"success","data":[{CARD_A},{CARD_B}]}}"#),
        format!(r#"{{"Data":[{CARD_A},{CARD_B}],"total":2}}"#),
        format!(r#"{{"data":{}}}"#, js(&format!("[{CARD_A},{CARD_B}]"))),
        format!("\n  [ {CARD_A} ,\n {CARD_B} ]\n"),
    ] {
        assert_eq!(decode_with(&body, JSON, &no_rules()), expected, "{body}");
    }
    // A wrapper around one card object.
    let single = decode_with(&format!(r#"{{"data":{CARD_A}}}"#), JSON, &no_rules());
    assert_eq!(single, decode_with(CARD_A, JSON, &no_rules()));
}

#[test]
fn bodies_without_cards_are_errors() {
    for body in ["[]", r#"{"data":[]}"#, r#"{"records":[]}"#] {
        assert_eq!(decode_err(body, JSON, &no_rules()), DecodeError::NoCards, "{body}");
    }
    for body in ["", "   \r\n"] {
        assert_eq!(decode_err(body, JSON, &no_rules()), DecodeError::EmptyBody, "{body:?}");
    }
    for body in ["42", r#""card""#, "null", "true"] {
        let err = decode_err(body, JSON, &no_rules());
        assert!(matches!(err, DecodeError::NotCards(_)), "{body}: {err:?}");
    }
    let err = decode_err(&format!(r#"[{CARD_A},"not a card"]"#), JSON, &no_rules());
    let DecodeError::NotCards(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("item 1"), "{message}");
    // Deep nesting is refused, not a stack overflow.
    let err = decode_err(&"[".repeat(100_000), JSON, &no_rules());
    assert!(matches!(err, DecodeError::InvalidJson(_)), "{err:?}");
    let err = decode_err(&"{\"a\":".repeat(100_000), JSON, &no_rules());
    assert!(matches!(err, DecodeError::InvalidJson(_)), "{err:?}");
}

#[test]
fn missing_required_fields_name_the_field() {
    for (body, vendor_key, key) in [
        (r#"{"companyId":"72000123","chatId":"348027659","name":"王女士"}"#, "visitorStaticId", "visitor_static_id"),
        (
            r#"{"visitorStaticId":"","companyId":"72000123","chatId":"348027659"}"#,
            "visitorStaticId",
            "visitor_static_id",
        ),
        (
            r#"{"visitorStaticId":"  ","companyId":"72000123","chatId":"348027659"}"#,
            "visitorStaticId",
            "visitor_static_id",
        ),
        (r#"{"visitorStaticId":"v1","chatId":"348027659"}"#, "companyId", "company_id"),
        (r#"{"visitorStaticId":"v1","companyId":null,"chatId":"348027659"}"#, "companyId", "company_id"),
        (r#"{"visitorStaticId":"v1","companyId":"72000123"}"#, "chatId", "chat_id"),
        (r#"{"visitorStaticId":"v1","companyId":"72000123","chatId":""}"#, "chatId", "chat_id"),
    ] {
        let err = decode_err(body, JSON, &no_rules());
        assert_eq!(err, DecodeError::MissingField { item: None, vendor_key, key }, "{body}");
        let text = err.to_string();
        assert!(text.contains(vendor_key), "{text}");
        assert!(!text.contains("item"), "{text}");
    }
}

#[test]
fn missing_required_fields_name_the_batch_item() {
    let no_company = r#"{"visitorStaticId":"v2","chatId":"348027659","name":"李先生"}"#;
    let no_chat = r#"{"visitorStaticId":"v3","companyId":72000123}"#;
    let err = decode_err(&format!("[{CARD_A},{no_company}]"), JSON, &no_rules());
    assert_eq!(err, DecodeError::MissingField { item: Some(1), vendor_key: "companyId", key: "company_id" });
    let text = err.to_string();
    assert!(text.contains("item 1") && text.contains("companyId"), "{text}");

    let err = decode_err(&format!(r#"{{"data":[{no_chat},{CARD_A}]}}"#), JSON, &no_rules());
    assert_eq!(err, DecodeError::MissingField { item: Some(0), vendor_key: "chatId", key: "chat_id" });
    assert!(err.to_string().contains("item 0"), "{err}");
}

#[test]
fn json_is_read_under_every_content_type_the_vendor_uses() {
    let expected = decode_with(SOGOU_MOBILE_LEAD, JSON, &no_rules());
    for content_type in [
        Some("application/json;charset=utf-8"),
        Some("application/json; charset=UTF-8"),
        Some("text/plain"),
        Some("text/plain;charset=utf-8"),
        Some("text/html;charset=UTF-8"),
        Some("application/octet-stream"),
        None,
    ] {
        assert_eq!(decode_with(SOGOU_MOBILE_LEAD, content_type, &no_rules()), expected, "{content_type:?}");
    }
    let padded = format!("\u{FEFF}\r\n  {SOGOU_MOBILE_LEAD}\n\n");
    assert_eq!(decode_with(&padded, Some("text/html;charset=UTF-8"), &no_rules()), expected);
}

/// The transcript of the form tests, as the vendor's template puts it in a form field.
fn form_transcript() -> String {
    format!(
        r#"[{{"chat_id":"348027659","create_time":"2020-04-13 16:49:47","from_id":"{EXAMPLE_FROM_VISITOR}","message":"我想报 周末班","recorder_id":"1854094590","type":"RECORD_RECORD"}},{{"chat_id":"348027659","create_time":"2020-04-13 16:49:54","from_id":"hkzyzs-kf","message":"好的，请留电话 & 微信","recorder_id":"1854098812","type":"RECORD_RECORD"}}]"#
    )
}

fn vendor_form_body() -> String {
    let transcript = form_transcript();
    vendor_form(&[
        ("visitorStaticId", EXAMPLE_FROM_VISITOR),
        ("companyId", "72000123"),
        ("chatId", "348027659"),
        ("type", "转线索"),
        ("name", "李 先生"),
        ("mobile", "+86 13912345678"),
        ("mobile", ""),
        ("note", "周六 上午&下午=都行\n谢谢"),
        ("chatURL", "http://m.xxx.com/zt/hbtd.html?a=1&b=2"),
        ("createTime", "2020-04-13 16:49:47"),
        // The vendor's code appends keys without encoding them.
        ("schoolName ", "太原校区"),
        ("意向课程", "会计实操"),
        ("currentChatJsonDetail", &transcript),
    ])
}

fn check_vendor_form_card(card: &Card) {
    assert_eq!(
        card.fields,
        fields(&[
            ("visitor_static_id", EXAMPLE_FROM_VISITOR),
            ("company_id", "72000123"),
            ("chat_id", "348027659"),
            ("card_type", "转线索"),
            ("name", "李 先生"),
            ("mobile", "+86 13912345678"),
            ("note", "周六 上午&下午=都行\n谢谢"),
            ("chat_url", "http://m.xxx.com/zt/hbtd.html?a=1&b=2"),
            ("school_name", "太原校区"),
        ])
    );
    assert_eq!(card.times.get("create_time"), Some(&utc("2020-04-13T08:49:47Z")));
    assert_eq!(card.extra, extra(&[("意向课程", "会计实操")]));
    assert_eq!(senders(card), vec![("1854094590", Sender::Visitor), ("1854098812", Sender::Staff)]);
    assert_eq!(card.messages[0].message, "我想报 周末班");
    assert_eq!(card.messages[1].message, "好的，请留电话 & 微信");
}

#[test]
fn form_urlencoded_body_as_the_vendors_http_form() {
    let body = vendor_form_body();
    // Java's URLEncoder: a space is `+`, a plus is %2B.
    assert!(body.contains("name=%E6%9D%8E+%E5%85%88%E7%94%9F"), "{body}");
    assert!(body.contains("mobile=%2B86+13912345678"), "{body}");
    assert!(body.contains("currentChatJsonDetail=%5B%7B%22chat_id%22"), "{body}");
    for content_type in [FORM, Some("application/x-www-form-urlencoded;charset=UTF-8")] {
        let decoded = decoded_card_with(&body, content_type, &no_rules());
        assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
        check_vendor_form_card(&decoded.card);
    }
}

#[test]
fn form_body_is_sniffed_under_any_other_content_type() {
    // The vendor's HTTP client labels a body application/json;charset=utf-8 unless told
    // otherwise; tools send text/plain or nothing. Not `{` or `[`: a form.
    let body = vendor_form_body();
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/html;charset=UTF-8"),
        Some("application/json;charset=utf-8"),
        Some("application/json"),
    ] {
        let card = decoded_card_with(&body, content_type, &no_rules()).card;
        check_vendor_form_card(&card);
    }
}

#[test]
fn json_sent_under_the_form_type_is_read_as_json() {
    // `curl -d @card.json` labels a JSON body as a form; no form field name starts with `{`.
    let expected = decode_with(SOGOU_MOBILE_LEAD, JSON, &no_rules());
    assert_eq!(decode_with(SOGOU_MOBILE_LEAD, FORM, &no_rules()), expected);
    let err = decode_err(VENDOR_EXAMPLE_AS_PRINTED, FORM, &no_rules());
    assert!(matches!(err, DecodeError::InvalidJson(_)), "{err:?}");
}

#[test]
fn pasted_spaces_between_tokens_are_white_space() {
    let body = format!("\u{FEFF}{{\u{3000}{IDS},\u{A0}\"name\":\u{A0}\"王女士\"\u{3000}}}");
    assert_eq!(card(&body).get("name"), Some("王女士"));
}

#[test]
fn form_field_holding_a_batch_as_json() {
    let body = vendor_form(&[("data", &format!("[{CARD_A},{CARD_B}]"))]);
    let push = decode_with(&body, FORM, &no_rules());
    assert_eq!(push, decode_with(&format!("[{CARD_A},{CARD_B}]"), JSON, &no_rules()));
}

#[test]
fn multipart_body() {
    let transcript = form_transcript();
    let parts = [
        ("visitorStaticId", EXAMPLE_FROM_VISITOR),
        ("companyId", "72000123"),
        ("chatId", "348027659"),
        ("type", "转线索"),
        ("name", "李 先生"),
        ("mobile", "+86 13912345678"),
        ("mobile", ""),
        ("note", "周六 上午&下午=都行\n谢谢"),
        ("chatURL", "http://m.xxx.com/zt/hbtd.html?a=1&b=2"),
        ("createTime", "2020-04-13 16:49:47"),
        ("schoolName ", "太原校区"),
        ("意向课程", "会计实操"),
        ("currentChatJsonDetail", transcript.as_str()),
    ];
    let boundary = "----easyliaoBoundary7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let decoded = decoded_card_with(&body, Some(&content_type), &no_rules());
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    check_vendor_form_card(&decoded.card);

    let err = decode_err(&body, Some("multipart/form-data"), &no_rules());
    assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Source rules: the type filter and field_map

#[test]
fn type_filter_ignores_other_card_types() {
    let rules = rules(&["转线索"], &[]);
    let leave_message = r#"{"visitorStaticId":"v9","type":"留言","name":"只留言的访客"}"#;
    let no_type = r#"{"visitorStaticId":"v10","companyId":"72000123","chatId":"1"}"#;
    let padded = r#"{"visitorStaticId":"v11","companyId":"72000123","chatId":"2","Type":" 转线索 "}"#;
    let lead = r#"{"visitorStaticId":"v12","companyId":"72000123","chatId":"3","type":"转线索"}"#;
    let push = decode_with(&format!("[{lead},{leave_message},{no_type},{padded}]"), JSON, &rules);
    let ignored: Vec<bool> = push.cards.iter().map(|c| c.ignored).collect();
    assert_eq!(ignored, vec![false, true, false, false]);
    assert_eq!((push.accepted(), push.ignored()), (3, 1));
    // An ignored card is still decoded (it is kept), and needs no companyId or chatId.
    assert_eq!(push.cards[1].card.get("name"), Some("只留言的访客"));
    assert_eq!(push.cards[1].card.card_type(), Some("留言"));

    let push = decode_with(leave_message, JSON, &rules);
    assert_eq!((push.accepted(), push.ignored()), (0, 1));

    // Without a filter every type is accepted, so the same card must carry its ids.
    let err = decode_err(leave_message, JSON, &no_rules());
    assert_eq!(err, DecodeError::MissingField { item: None, vendor_key: "companyId", key: "company_id" });
    // Several accepted types.
    let rules = self::rules(&["转线索", "留言"], &[]);
    let push = decode_with(&format!("[{lead},{no_type}]"), JSON, &rules);
    assert_eq!(push.accepted(), 2);
}

#[test]
fn field_map_renames_keys() {
    let rules = rules(
        &[],
        &[
            ("客户手机", "mobile"),
            ("客户 微信", "weixin"),
            ("访客ID", "visitor_static_id"),
            ("聊天记录", "messages"),
            ("extColumn3", "ip"),
            ("意向课程", "subject_name"),
            ("下次回访", "edit_time"),
        ],
    );
    let transcript = js(&format!(
        r#"[{{"recorder_id":"1","from_id":"{EXAMPLE_VISITOR}","message":"你好"}},{{"recorder_id":"2","from_id":"hkzyzs-kf","message":"您好"}}]"#
    ));
    let body = format!(
        r#"{{"访客ID":"{EXAMPLE_VISITOR}","companyId":"72000123","chatId":"348027659",
        "客户手机":"13912345678","mobile":"","客户微信":"wx_liu","聊天记录":{transcript},
        "extColumn3":"223.104.14.58","意向 课程":"会计实操","下次回访":"2020-04-14 10:00:00","crmzdy_1":"x"}}"#
    );
    let decoded = decoded_card_with(&body, JSON, &rules);
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    let card = decoded.card;
    assert_eq!(
        card.fields,
        fields(&[
            ("visitor_static_id", EXAMPLE_VISITOR),
            ("company_id", "72000123"),
            ("chat_id", "348027659"),
            ("mobile", "13912345678"),
            ("weixin", "wx_liu"),
            ("ip", "223.104.14.58"),
            ("subject_name", "会计实操"),
        ])
    );
    assert_eq!(card.times.get("edit_time"), Some(&utc("2020-04-14T02:00:00Z")));
    assert_eq!(card.extra, extra(&[("crmzdy_1", "x")]));
    assert_eq!(senders(&card), vec![("1", Sender::Visitor), ("2", Sender::Staff)]);
    // The renames apply to forms too.
    let form = vendor_form(&[
        ("访客ID", EXAMPLE_VISITOR),
        ("companyId", "72000123"),
        ("chatId", "348027659"),
        ("客户手机", "13912345678"),
    ]);
    let card = decoded_card_with(&form, FORM, &rules).card;
    assert_eq!(card.get("mobile"), Some("13912345678"));
}

#[test]
fn field_map_naming_an_unknown_canonical_key_is_an_error() {
    let err = SourceRules::new(
        vec![],
        [("客户手机".to_string(), "mobile".to_string()), ("客户电话".to_string(), "cellphone".to_string())],
    )
    .unwrap_err();
    assert_eq!(err.incoming, "客户电话");
    assert_eq!(err.canonical, "cellphone");
    let text = err.to_string();
    assert!(text.contains("客户电话") && text.contains("cellphone"), "{text}");
    assert!(SourceRules::new(vec![], [("x".to_string(), "".to_string())]).is_err());
    assert!(SourceRules::new(vec![], [("聊天".to_string(), "messages".to_string())]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Size

#[test]
fn a_100000_key_object_decodes() {
    let mut body = format!("{{{IDS}");
    for i in 0..100_000 {
        body.push_str(&format!(",\"crmzdy_{i}\":\"值{i}\""));
    }
    // And one canonical key 1,000 times, the last non-empty value winning.
    for i in 0..1_000 {
        let value = if i % 2 == 0 { format!("王女士{i}") } else { String::new() };
        body.push_str(&format!(",\"name\":\"{value}\""));
    }
    body.push('}');
    let card = card(&body);
    assert_eq!(card.extra.len(), 100_000);
    assert_eq!(card.extra.get("crmzdy_99999").map(String::as_str), Some("值99999"));
    assert_eq!(card.get("name"), Some("王女士998"));
    assert_eq!(card.fields.len(), 4);
}

#[test]
fn a_50000_message_transcript_decodes() {
    let mut transcript = String::from("[");
    for i in 0..50_000u64 {
        if i > 0 {
            transcript.push(',');
        }
        let from = if i % 2 == 0 { EXAMPLE_FROM_VISITOR } else { "hkzyzs-kf" };
        transcript.push_str(&format!(
            r#"{{"chat_id":433328278485408768,"create_time":{},"from_id":"{from}","message":"第{i}条\n消息","recorder_id":{},"type":"RECORD_RECORD"}}"#,
            1_586_767_787_000u64 + i * 1000,
            433_328_278_485_408_768u64 + i
        ));
    }
    transcript.push(']');
    // Once as an array, once more as a JSON string in chatDetailSL: the union is 50,000.
    let body = format!("{{{IDS},\"currentChatJsonDetail\":{transcript},\"chatDetailSL\":{}}}", js(&transcript));
    let card = card(&body);
    assert_eq!(card.messages.len(), 50_000);
    assert_eq!(card.messages.iter().filter(|m| m.sender == Sender::Visitor).count(), 25_000);
    let last = card.messages.last().unwrap();
    assert_eq!(last.recorder_id, (433_328_278_485_408_768u64 + 49_999).to_string());
    assert_eq!(last.message, "第49999条\n消息");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn content_types() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(xiansuo_push::fuzzing::CONTENT_TYPES.to_vec())
}

/// Pieces that JSON, the vendor's bodies and their usual breakage are made of.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    " ",
    "\n",
    "\r",
    "\t",
    "\\",
    "\\u",
    "\\ud83d",
    "\\ude00",
    "\\ud800",
    "\\/",
    "\\n",
    "0",
    "1",
    "-",
    ".",
    "e",
    "E+",
    "433328278485408768",
    "01000000013100635537156211197954",
    "1585346342123",
    "null",
    "true",
    "false",
    "tru",
    "nul",
    "\"visitorStaticId\"",
    "\"companyId\"",
    "\"chatId\"",
    "\"currentChatJsonDetail\"",
    "\"chatDetailSL\"",
    "\"chatDetailJsonAll\"",
    "\"createTime\"",
    "\"createTimeStamp\"",
    "\"type\"",
    "\"data\"",
    "\"records\"",
    "\"items\"",
    "\"from_id\"",
    "\"recorder_id\"",
    "\"recordId\"",
    "\"sender_type\"",
    "\"message\"",
    "\"create_time\"",
    "\"extColumn 1\"",
    "\"schoolName \"",
    "\"2020-03-28 05:59:02\"",
    "\"1585346342\"",
    "\"0\"",
    "\"\"",
    "\"hkzyzs-kf\"",
    "\"[{\\\"recorder_id\\\":1}]\"",
    "\"太原市6283\"",
    "太原",
    "“",
    "”",
    "，",
    "：",
    "\u{A0}",
    "\u{3000}",
    "\u{FEFF}",
    "\u{200B}",
    "=",
    "&",
    "+",
    "%",
    "%E5%A4%AA",
    "%2",
    "visitorStaticId=",
    "currentChatJsonDetail=",
    "--XyZ",
    "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n",
    "<p>",
    "<\\/p>",
    "😀",
    "\u{0}",
];

fn json_ish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
}

/// Valid JSON whose keys and values are the vendor's, nested at random.
fn vendor_json() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "visitorStaticId",
        "companyId",
        "chatId",
        "name",
        "mobile",
        "type",
        "createTime",
        "editTime",
        "createTimeStamp",
        "currentChatJsonDetail",
        "chatDetailSL",
        "chatDetailEC",
        "data",
        "records",
        "items",
        "recorder_id",
        "recordId",
        "from_id",
        "fromId",
        "sender_type",
        "senderType",
        "message",
        "create_time",
        "chat_id",
        "extColumn 1",
        "crmzdy_1",
        " note ",
    ]);
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("0".to_string()),
        Just("1".to_string()),
        Just("433328278485408768".to_string()),
        Just("1585346342123".to_string()),
        Just("-1.5e300".to_string()),
        Just("1e999".to_string()),
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "1",
            "2",
            "转线索",
            "hkzyzs-kf",
            "01000000013100635537156211197954",
            "oWx7a1b2c3d4e5f6g7h8i9j0kLmN",
            "2020-03-28 05:59:02",
            "2020-02-30 25:61:61",
            "1585346342",
            "99999999999999",
            "[]",
            "[{\"recorder_id\":1,\"from_id\":\"x\"}]",
            "[{\"recorder_id\":",
            "{\"a\":1}",
            "<p>你好<\\/p>",
            "第一行\n第二行",
        ])
        .prop_map(js),
        any::<String>().prop_map(|s| js(&s)),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((keys.clone(), inner), 0..10).prop_map(|members| {
                let members: Vec<String> = members.into_iter().map(|(k, v)| format!("{}:{v}", js(k))).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Spellings of three canonical keys, and values empty, blank and not.
const MODEL_KEYS: &[(&str, &str)] = &[
    ("mobile", "mobile"),
    ("Mobile ", "mobile"),
    ("MOBILE", "mobile"),
    ("name", "name"),
    (" NAME", "name"),
    ("extColumn1", "ext_column_1"),
    ("extColumn 1", "ext_column_1"),
    ("extColum1", "ext_column_1"),
    ("ext_column_1", "ext_column_1"),
];
const MODEL_VALUES: &[&str] = &["", "  ", "13912345678", "王女士", " 李 先生 ", "223.104.14.58", "\t"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        content_type in content_types(),
    ) {
        let _ = decode_push(&body, content_type, &no_rules());
    }

    #[test]
    fn json_ish_text_never_panics(body in json_ish(), content_type in content_types()) {
        let _ = decode_push(body.as_bytes(), content_type, &no_rules());
        let _ = decode_push(format!("{{{IDS},{body}").as_bytes(), content_type, &no_rules());
        let _ = decode_push(format!("{{{IDS},\"currentChatJsonDetail\":[{body}]}}").as_bytes(), content_type, &no_rules());
    }

    #[test]
    fn vendor_shaped_json_never_panics(value in vendor_json()) {
        let rules = rules(&["转线索"], &[("客户手机", "mobile")]);
        let _ = decode_push(value.as_bytes(), JSON, &rules);
        let card = format!("{{{IDS},\"x\":{value},\"currentChatJsonDetail\":[{value}],\"chatDetailSL\":{}}}", js(&value));
        let decoded = decode_push(card.as_bytes(), JSON, &rules);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        let _ = decode_push(value.as_bytes(), FORM, &rules);
    }

    #[test]
    fn last_non_empty_value_wins(members in prop::collection::vec(
        (0..MODEL_KEYS.len(), 0..MODEL_VALUES.len()), 0..40,
    )) {
        let mut body = format!("{{{IDS}");
        let mut expected: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in members {
            let (key, canonical) = MODEL_KEYS[k];
            let value = MODEL_VALUES[v];
            body.push_str(&format!(",{}:{}", js(key), js(value)));
            if !value.trim().is_empty() {
                expected.insert(canonical, value.trim().to_string());
            }
        }
        body.push('}');
        let card = card(&body);
        for canonical in ["mobile", "name", "ext_column_1"] {
            prop_assert_eq!(card.get(canonical), expected.get(canonical).map(String::as_str), "{}", canonical);
        }
    }
}

#[test]
fn an_odd_item_in_the_transcript_costs_only_itself() {
    let body = r#"{"visitorStaticId":"v","companyId":"c","chatId":"x","currentChatJsonDetail":[
        {"recorder_id":1,"from_id":"v","message":"你好"},
        {"type":"RECORD_IMAGE","url":"http://x/y.png"},
        {"recorder_id":2,"from_id":"kf","message":"您好"}]}"#;
    let decoded = decode_push(body.as_bytes(), Some("application/json"), &SourceRules::default()).unwrap();
    let card = &decoded.cards[0];
    let texts: Vec<&str> = card.card.messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["你好", "您好"]);
    assert!(card.warnings.iter().any(|w| w.contains("1 items are not messages")), "{:?}", card.warnings);
    assert!(!card.card.extra.contains_key("currentChatJsonDetail"));
}
