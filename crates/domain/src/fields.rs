//! The canonical fields of a lead card (push-spec.md, "Fields" and "More keys").
//!
//! Each field has one canonical key (snake case, used in the API, the database columns and the
//! configuration), the vendor's own key, and a Chinese label for people.

/// What kind of value a field holds once decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Kept as text, exactly as sent (ids included: they are strings, always).
    Text,
    /// An instant: the vendor's zone-less local time, or epoch seconds / milliseconds.
    Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Canonical key: the API's JSON key and the database column.
    pub key: &'static str,
    /// The key the vendor documents.
    pub vendor_key: &'static str,
    pub kind: FieldKind,
    /// What the field is, in Chinese, as the vendor's note names it.
    pub label: &'static str,
}

const fn text(key: &'static str, vendor_key: &'static str, label: &'static str) -> FieldDef {
    FieldDef { key, vendor_key, kind: FieldKind::Text, label }
}

const fn time(key: &'static str, vendor_key: &'static str, label: &'static str) -> FieldDef {
    FieldDef { key, vendor_key, kind: FieldKind::Time, label }
}

/// Every canonical card field except the transcript (which becomes [`crate::Message`]s).
/// The order is the order of push-spec.md; the database columns follow it.
pub static FIELDS: &[FieldDef] = &[
    text("visitor_static_id", "visitorStaticId", "访客静态ID"),
    text("company_id", "companyId", "公司ID"),
    text("chat_id", "chatId", "会话ID"),
    text("name", "name", "名称"),
    text("email", "email", "电子邮箱"),
    text("weixin", "weixin", "微信"),
    text("area", "area", "地域"),
    text("qq", "qq", "QQ"),
    text("sex", "sex", "性别"),
    text("user_id", "userId", "所属者ID"),
    text("create_user_id", "createUserId", "创建者ID"),
    text("ext_column_1", "extColumn1", "扩展字段1"),
    text("ext_column_2", "extColumn2", "扩展字段2"),
    text("ext_column_3", "extColumn3", "扩展字段3"),
    text("ext_column_4", "extColumn4", "扩展字段4"),
    text("ext_column_5", "extColumn5", "扩展字段5"),
    text("ext_column_6", "extColumn6", "扩展字段6"),
    text("ext_column_7", "extColumn7", "扩展字段7"),
    text("ext_column_8", "extColumn8", "扩展字段8"),
    text("ext_column_9", "extColumn9", "扩展字段9"),
    text("ext_column_10", "extColumn10", "扩展字段10"),
    text("ext_column_11", "extColumn11", "扩展字段11"),
    text("ext_column_12", "extColumn12", "扩展字段12"),
    text("ext_column_13", "extColumn13", "扩展字段13"),
    text("ext_column_14", "extColumn14", "扩展字段14"),
    text("ext_column_15", "extColumn15", "扩展字段15"),
    text("device_type", "deviceType", "设备类型"),
    text("search_engine", "searchEngine", "搜索引擎"),
    text("keyword", "keyword", "搜索词"),
    text("chat_url", "chatURL", "会话地址"),
    text("refer", "refer", "来源页"),
    text("search_host", "searchHost", "搜索域名"),
    text("first_url", "firstUrl", "首次访问页"),
    time("create_time", "createTime", "创建时间"),
    time("edit_time", "editTime", "编辑时间"),
    time("allocation_time", "allocationTime", "名片分配时间"),
    text("tel", "tel", "电话"),
    text("mobile", "mobile", "手机"),
    text("country", "country", "国家"),
    text("province", "province", "省"),
    text("city", "city", "市"),
    text("site_id", "siteId", "子站点ID"),
    text("site_name", "siteName", "子站点名称"),
    text("company_name", "companyName", "公司名称"),
    text("ipv6", "ipv6", "IPv6地址"),
    text("ip", "ip", "IP地址"),
    text("promotion_id", "promotionId", "渠道ID"),
    text("card_type", "type", "名片类型"),
    text("ntag_id", "ntagId", "总结标签ID"),
    text("ntag_name", "ntagName", "总结标签名称"),
    text("ntag_message", "ntagMessage", "总结标签说明"),
    text("subject_name", "subjectName", "项目名称"),
    text("school_name", "schoolName", "校区名称"),
    text("user_real_name", "userRealName", "所属者中文名"),
    text("create_user_real_name", "createUserRealName", "创建人名称"),
    text("edit_user_real_name", "editUserRealName", "最后修改人中文名"),
    text("note", "note", "备注"),
    text("user_no", "userNo", "工号"),
    text("edit_user_id", "editUserId", "修改人账号ID"),
    text("edit_user_display_name", "editUserRealNam", "修改人对内展示名称"),
    text("bidding_word", "biddingWord", "关键词"),
    text("group_id", "groupId", "分组ID"),
    text("district", "district", "区县"),
    text("group_name", "groupName", "分组名称"),
    text("promotion_name", "promotionName", "渠道名称"),
    text("ssid", "ssid", "第三方会话ID"),
    text("tg_ad_provider", "tgAdProvider", "广告平台ID"),
    text("tg_ad_agent", "tgAdAgent", "广告代理ID"),
    text("tg_ad_account", "tgAdAccount", "广告账户ID"),
    text("tg_ad_account_name", "tgAdAccountName", "广告账户名称"),
    text("tg_plan_id", "tgPlanId", "推广计划ID"),
    text("tg_plan_name", "tgPlanName", "推广计划名称"),
    text("tg_group_id", "tgGroupId", "推广单元ID"),
    text("tg_group_name", "tgGroupName", "推广单元名称"),
    text("tg_creative_id", "tgCreativeId", "创意ID"),
    text("tg_creative_name", "tgCreativeName", "创意名称"),
    text("tg_keyword_id", "tgKeywordId", "购买关键词ID"),
    text("tg_keyword_name", "tgKeywordName", "购买关键词"),
    text("bcp_aduser_id", "bcpAduserId", "百度广告用户ID"),
    text("last_landing_page", "lastLandingPage", "最后着陆页"),
    text("rep_name", "repName", "访客昵称"),
    text("spread_flag", "spreadFlag", "推广标识"),
    text("visitor_source_id", "visitor_source_id", "来源视频/笔记ID"),
];

/// The contact fields, which contacts found in the chat may fill.
pub const CONTACT_FIELDS: [&str; 5] = ["mobile", "tel", "weixin", "qq", "email"];

/// The position of a canonical key in [`FIELDS`].
pub fn field_index(key: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.key == key)
}

/// The definition of a canonical key.
pub fn field(key: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn canonical_and_vendor_keys_are_unique() {
        let keys: HashSet<_> = FIELDS.iter().map(|f| f.key).collect();
        assert_eq!(keys.len(), FIELDS.len());
        let vendor: HashSet<_> = FIELDS.iter().map(|f| f.vendor_key).collect();
        assert_eq!(vendor.len(), FIELDS.len());
    }

    #[test]
    fn canonical_keys_are_safe_column_names() {
        for f in FIELDS {
            assert!(f.key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", f.key);
        }
    }
}
