//! Realistic lead cards, generated deterministically from a seed (push-spec.md): Chinese names,
//! provinces and cities, the four search engines, keywords, landing URLs with escaped slashes,
//! transcripts of 2–40 messages (visitor and staff lines, a rich-text greeting, sometimes a form),
//! long numeric ids (32-digit visitors, 18-digit chats and messages), empty keys as the vendor's
//! template sends them, and a few of the vendor's quirks (key spellings, a duplicate key, bare
//! numeric ids).
//!
//! The same (seed, visitor, round) always gives the same bytes, so runs compare.

use std::fmt::Write as _;

/// The vendor's id of the customer's company: one account, as in a real installation.
pub const COMPANY_ID: &str = "88271217";
const COMPANY_NAME: &str = "山西弘毅教育科技有限公司";

/// A small, fast, deterministic random source (SplitMix64).
#[derive(Clone)]
pub struct Rng(u64);

pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64, a: u64, b: u64) -> Rng {
        Rng(mix(seed ^ mix(a ^ mix(b.wrapping_add(0x5851_F42D_4C95_7F2D)))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index into `n` items favouring the first ones (big cities, Baidu…).
    fn skewed(&mut self, n: usize) -> usize {
        ((n as f64) * self.unit().powf(1.8)) as usize % n
    }

    fn digits(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        for _ in 0..n {
            s.push(char::from(b'0' + self.below(10) as u8));
        }
        s
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于",
    "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆",
    "汪", "范", "金", "石", "廖", "贾", "夏", "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛",
    "闫", "段", "雷", "侯", "龙", "史", "陶", "黎", "贺", "顾", "毛", "郝", "龚", "邵", "万", "钱", "严", "武", "戴",
    "莫", "孔", "欧阳", "上官",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "刚", "桂英", "浩", "宇", "晨", "欣", "怡", "子涵", "梓萱", "俊", "鹏", "丹", "玲", "婷", "雪",
    "慧", "建华", "志强", "海燕", "晓燕", "文博", "思远", "一鸣", "雨桐", "佳怡", "欣怡", "浩然", "子轩", "宇航",
    "诗涵", "梦琪", "国庆", "建国", "红梅", "春花", "志伟", "晓东", "丽娟", "海波", "永强", "金凤", "玉兰", "少华",
    "家豪", "嘉欣",
];
/// (province, city), roughly by how often they appear.
const PLACES: &[(&str, &str)] = &[
    ("广东省", "广州市"),
    ("广东省", "深圳市"),
    ("北京市", "北京市"),
    ("上海市", "上海市"),
    ("山西省", "太原市"),
    ("四川省", "成都市"),
    ("浙江省", "杭州市"),
    ("江苏省", "苏州市"),
    ("湖北省", "武汉市"),
    ("河南省", "郑州市"),
    ("江苏省", "南京市"),
    ("陕西省", "西安市"),
    ("重庆市", "重庆市"),
    ("山东省", "济南市"),
    ("山东省", "青岛市"),
    ("湖南省", "长沙市"),
    ("广东省", "东莞市"),
    ("天津市", "天津市"),
    ("河北省", "石家庄市"),
    ("福建省", "厦门市"),
    ("福建省", "福州市"),
    ("安徽省", "合肥市"),
    ("辽宁省", "沈阳市"),
    ("山西省", "大同市"),
    ("山西省", "运城市"),
    ("云南省", "昆明市"),
    ("广西壮族自治区", "南宁市"),
    ("江西省", "南昌市"),
    ("贵州省", "贵阳市"),
    ("黑龙江省", "哈尔滨市"),
    ("吉林省", "长春市"),
    ("内蒙古自治区", "呼和浩特市"),
    ("甘肃省", "兰州市"),
    ("新疆维吾尔自治区", "乌鲁木齐市"),
    ("海南省", "海口市"),
    ("宁夏回族自治区", "银川市"),
];
/// (name as the vendor writes it, hosts, share in percent).
pub const ENGINES: &[(&str, &[&str], u64)] = &[
    ("百度", &["m.baidu.com", "www.baidu.com"], 55),
    ("搜狗", &["wap.sogou.com", "www.sogou.com"], 15),
    ("360", &["m.so.com", "www.so.com"], 12),
    ("神马", &["m.sm.cn"], 13),
    ("", &[""], 5),
];
/// (topic, landing page slug).
const TOPICS: &[(&str, &str)] = &[
    ("会计培训", "kuaiji"),
    ("初级会计", "cjkj"),
    ("学历提升", "xueli"),
    ("成人高考", "chengkao"),
    ("专升本", "zsb"),
    ("考研辅导", "kaoyan"),
    ("雅思培训", "ielts"),
    ("少儿编程", "biancheng"),
    ("美术培训", "meishu"),
    ("厨师培训", "chushi"),
    ("挖掘机培训", "wajueji"),
    ("护士资格证", "hushi"),
    ("教师资格证", "jiaozi"),
    ("一级建造师", "yijian"),
    ("二级建造师", "erjian"),
    ("消防工程师", "xiaofang"),
    ("人力资源管理师", "renli"),
    ("健康管理师", "jiankang"),
    ("UI设计培训", "ui"),
    ("Python培训", "python"),
];
const MODIFIERS: &[&str] = &[
    "多少钱",
    "哪家好",
    "学费",
    "报名入口",
    "官网",
    "靠谱吗",
    "培训班",
    "速成班",
    "周末班",
    "网课",
    "",
    "报名时间",
    "考试时间",
    "费用一览表",
    "附近",
];
/// (user id, display name): the agents who own the cards.
const STAFF: &[(&str, &str)] = &[
    ("hkzyzs-kf", "张老师"),
    ("AI-omg122TianA", "田安"),
    ("hyjy-kf01", "李婷"),
    ("hyjy-kf02", "王晓雪"),
    ("hyjy-kf03", "刘洋"),
    ("hyjy-kf05", "陈静"),
    ("hyjy-kf08", "赵敏"),
    ("hyjy-zxs11", "孙老师"),
    ("hyjy-zxs12", "周老师"),
    ("hyjy-ty-kf", "吴芳"),
    ("hyjy-dc-kf", "郑丽"),
    ("hyjy-yc-kf", "马超"),
];
const TAGS: &[(&str, &str, &str)] = &[
    ("101", "有效咨询", "访客有明确意向"),
    ("102", "已留电话", "已获取联系方式"),
    ("103", "已加微信", "已添加微信"),
    ("104", "无效对话", "访客未回复"),
    ("105", "同行", "同行咨询"),
    ("106", "重复咨询", "老客户再次咨询"),
];
const SITES: &[(&str, &str)] =
    &[("1001", "官网PC站"), ("1002", "移动站"), ("1003", "百度基木鱼落地页"), ("1004", "信息流落地页")];
const DOMAINS: &[&str] = &["m.hongyi-edu.com", "www.hongyi-edu.com", "jz.hongyi-edu.cn", "zt.hyjy100.com"];
const NOTES: &[&str] = &[
    "想了解学费",
    "晚上再联系",
    "已加微信，发了资料",
    "意向强，周末试听",
    "在职，只能周末上课",
    "价格敏感，等优惠活动",
    "帮孩子咨询，家长决定",
    "电话未接通，明天再打",
    "需要分期付款",
    "零基础，担心跟不上",
];
const VISITOR_LINES: &[&str] = &[
    "你好",
    "在吗",
    "学费多少钱？",
    "{topic}怎么收费",
    "你们在{city}有校区吗",
    "周末有班吗",
    "可以先试听吗",
    "我想了解一下{topic}",
    "大概要学多久",
    "零基础可以学吗",
    "能分期付款吗",
    "包就业吗",
    "证书国家承认吗",
    "我的手机号是{mobile}",
    "加我微信吧，{mobile}",
    "好的，谢谢",
    "嗯嗯",
    "晚上再联系吧",
    "多少人一个班",
    "老师是什么资历",
    "有没有线上课程",
    "今年报名还来得及吗",
    "具体地址在哪里",
];
const STAFF_LINES: &[&str] = &[
    "您好，请问有什么可以帮您？",
    "您好，我是{company}的课程顾问，请问您想了解哪方面的课程呢？",
    "我们在{city}有直营校区，交通很方便的",
    "学费根据班型不同，从3980到12800都有，可以给您详细介绍一下",
    "方便留个电话吗？稍后老师给您回电详细介绍",
    "零基础完全可以的，我们有专门的入门班",
    "周末班和晚班都有，不影响上班",
    "可以分期的，支持花呗和信用卡分期",
    "好的，已经帮您登记了，老师会尽快联系您",
    "您可以加一下老师微信，发您{topic}的课程资料",
    "目前有优惠活动，本月报名立减500元",
    "请问怎么称呼您？",
    "好的，收到",
];

/// What stays the same about a visitor across pushes.
#[derive(Debug, Clone)]
pub struct Profile {
    /// 32 digits, unique per visitor index.
    pub visitor_id: String,
    pub name: String,
    /// 11 digits, or empty when the visitor left none.
    pub mobile: String,
    pub province: &'static str,
    pub city: &'static str,
    pub engine: usize,
    pub topic: usize,
    pub keyword: String,
    pub staff: usize,
    /// A WeChat openid when the chat came through WeChat.
    pub openid: Option<String>,
    pub phone: bool,
    pub ip: String,
    pub site: usize,
    pub domain: usize,
    /// Seconds after 2025-01-01 00:00 (China time) of the first chat.
    pub first_seen: i64,
}

/// Generates cards from a seed.
#[derive(Debug, Clone)]
pub struct Cards {
    pub seed: u64,
}

fn engine_index(rng: &mut Rng) -> usize {
    let mut roll = rng.below(100);
    for (i, (_, _, share)) in ENGINES.iter().enumerate() {
        if roll < *share {
            return i;
        }
        roll -= share;
    }
    ENGINES.len() - 1
}

pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn china_time(secs_since_2025: i64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default();
    (base + chrono::Duration::seconds(secs_since_2025)).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Writes one JSON object by hand: values as strings (escaped as JSON requires), URLs with
/// escaped slashes as the vendor sends them, or raw JSON.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

fn escape_into(out: &mut String, s: &str, slashes: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slashes => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        escape_into(self.out, k, false);
        self.out.push(':');
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        escape_into(self.out, v, false);
    }

    fn url(&mut self, k: &str, v: &str) {
        self.key(k);
        escape_into(self.out, v, true);
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }

    fn end(self) {
        self.out.push('}');
    }
}

/// Messages of a chat when no count is imposed: 2 to 40, most chats short (2 plus an
/// exponential tail: median about 4, mean about 5.5).
fn natural_message_count(rng: &mut Rng) -> usize {
    (2 + (-(1.0 - rng.unit()).ln() * MESSAGES_TAIL_MEAN) as usize).min(40)
}

const MESSAGES_TAIL_MEAN: f64 = 3.5;

impl Cards {
    pub fn new(seed: u64) -> Cards {
        Cards { seed }
    }

    pub fn profile(&self, visitor: u64) -> Profile {
        let mut rng = Rng::new(self.seed, visitor, 0);
        let (province, city) = PLACES[rng.skewed(PLACES.len())];
        let engine = engine_index(&mut rng);
        let topic = rng.skewed(TOPICS.len());
        let city_short = city.trim_end_matches('市');
        let keyword = match rng.below(10) {
            0..=3 => format!("{city_short}{}{}", TOPICS[topic].0, rng.pick(MODIFIERS)),
            4..=8 => format!("{}{}", TOPICS[topic].0, rng.pick(MODIFIERS)),
            _ => String::new(),
        };
        let mobile = if rng.chance(72) {
            format!("1{}{}", rng.pick(&["3", "5", "7", "8", "9"]), rng.digits(9))
        } else {
            String::new()
        };
        let name = match rng.below(20) {
            0..=10 => format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN)),
            11..=15 => format!("{city}{}", rng.digits(4)),
            16..=17 => format!("{}{}", rng.pick(SURNAMES), rng.pick(&["先生", "女士"])),
            _ => String::new(),
        };
        let openid = rng.chance(6).then(|| {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
            let mut s = String::from("o");
            for _ in 0..27 {
                s.push(char::from(*rng.pick(ALPHABET)));
            }
            s
        });
        // 32 digits: 12 that look random, then 20 that are a bijection of the visitor index
        // (an odd multiplier not divisible by 5 is invertible modulo 10^20): unique, not sequential.
        const TEN_POW_20: u128 = 100_000_000_000_000_000_000;
        let scrambled = (u128::from(visitor) * 7_640_891_576_956_012_809 + 31_415_926_535_897_932_384) % TEN_POW_20;
        let visitor_id = format!("{:012}{scrambled:020}", rng.below(1_000_000_000_000));
        Profile {
            visitor_id,
            name,
            mobile,
            province,
            city,
            engine,
            topic,
            keyword,
            staff: rng.skewed(STAFF.len()),
            openid,
            phone: rng.chance(72),
            ip: format!(
                "{}.{}.{}.{}",
                rng.pick(&[223, 112, 117, 39, 183, 36, 120, 101]),
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            ),
            site: rng.below(SITES.len() as u64) as usize,
            domain: rng.below(DOMAINS.len() as u64) as usize,
            first_seen: (rng.below(330 * 86_400) as i64 / 86_400) * 86_400 + 8 * 3600 + rng.below(15 * 3600) as i64,
        }
    }

    /// The card (one JSON object) of a visitor's push. Round 0 is the first chat; any other
    /// round is a later chat of the same visitor (a new chat id, new messages, later times).
    /// `messages` imposes the transcript's length.
    pub fn card(&self, visitor: u64, round: u64, messages: Option<usize>) -> String {
        let mut out = String::with_capacity(4096);
        self.write_card(&mut out, visitor, round, messages);
        out
    }

    pub fn write_card(&self, out: &mut String, visitor: u64, round: u64, messages: Option<usize>) {
        let p = self.profile(visitor);
        let mut rng = Rng::new(self.seed, visitor, round.wrapping_add(1));
        let (engine, hosts, _) = ENGINES[p.engine];
        let (topic, slug) = TOPICS[p.topic];
        let (staff_id, staff_name) = STAFF[p.staff];
        let (site_id, site_name) = SITES[p.site];
        let domain = DOMAINS[p.domain];
        let chat_id = format!("43{}", rng.digits(16));
        let chat_start = p.first_seen + if round == 0 { 0 } else { 86_400 * (1 + rng.below(60) as i64) };
        let n = messages.unwrap_or_else(|| natural_message_count(&mut rng));
        let visitor_from = p.openid.clone().unwrap_or_else(|| p.visitor_id.clone());
        let bare_ids = rng.chance(50);
        let sender_types = rng.chance(30);

        let landing = if engine == "百度" {
            format!("http://{domain}/zt/{slug}.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi&bd_vid={}", rng.digits(19))
        } else {
            format!("http://{domain}/zt/{slug}.html?sgyd1&PP&YS-YHJY&SG1-p-hb&key=weizhi")
        };
        let first_url = format!("http://{domain}/");
        let refer = match engine {
            "百度" => format!("https://{}/s?word={}&from=1012852q&sa=ts_1", hosts[0], percent_encode(&p.keyword)),
            "搜狗" => format!("https://{}/web/searchList.jsp?keyword={}", hosts[0], percent_encode(&p.keyword)),
            "360" => format!("https://{}/s?q={}&src=home", hosts[0], percent_encode(&p.keyword)),
            "神马" => format!("https://{}/s?q={}&from=smor", hosts[0], percent_encode(&p.keyword)),
            _ => String::new(),
        };
        let host = if hosts[0].is_empty() { "" } else { hosts[if p.phone { 0 } else { hosts.len() - 1 }] };
        let tag = if rng.chance(70) { Some(*rng.pick(TAGS)) } else { None };

        let mut o = Obj::new(out);
        o.str("visitorStaticId", &p.visitor_id);
        o.str("companyId", COMPANY_ID);
        o.str("chatId", &chat_id);
        o.str("name", &p.name);
        o.str("email", if rng.chance(3) { "zhangsan@163.com" } else { "" });
        o.str("weixin", if p.openid.is_some() || rng.chance(15) { &p.mobile } else { "" });
        o.str("area", "");
        o.str("qq", &if rng.chance(10) { rng.digits(9) } else { String::new() });
        o.str("sex", "");
        o.str("userId", staff_id);
        o.str("createUserId", staff_id);
        // The vendor's table spells it with a space; most templates do not.
        o.str(if rng.chance(5) { "extColumn 1" } else { "extColumn1" }, &p.ip);
        if rng.chance(5) {
            o.str("extColumn1", "");
        }
        for k in 2..=3 {
            o.str(&format!("extColumn{k}"), "");
        }
        o.str("deviceType", if p.phone { "phone" } else { "pc" });
        o.str("searchEngine", engine);
        o.str("keyword", &p.keyword);
        o.url(if rng.chance(20) { "chatUrl" } else { "chatURL" }, &landing);
        o.url("refer", &refer);
        o.str("searchHost", host);
        o.url("firstUrl", if rng.chance(50) { &landing } else { &first_url });
        o.str("createTime", &china_time(chat_start + 60 * n as i64));
        o.str("editTime", &china_time(chat_start + 60 * n as i64 + 30));
        o.str("allocationTime", &china_time(chat_start + 60 * n as i64 + 5));
        o.str("tel", "");
        o.str("mobile", &p.mobile);
        o.str("country", "中国");
        o.str("province", p.province);
        o.str("city", p.city);
        o.str("siteId", site_id);
        o.str("siteName", site_name);
        o.str("companyName", COMPANY_NAME);
        o.str("ipv6", "");
        o.str("ip", &p.ip);
        o.str("promotionId", "");
        o.str("type", "转线索");
        o.str("ntagId", tag.map_or("", |t| t.0));
        o.str("ntagName", tag.map_or("", |t| t.1));
        o.str("ntagMessage", tag.map_or("", |t| t.2));
        o.str("subjectName", topic);
        o.str("schoolName", &format!("{}校区", p.city.trim_end_matches('市')));
        o.str("userRealName", staff_name);
        o.str("createUserRealName", staff_name);
        o.str("editUserRealName", staff_name);
        let note = if rng.chance(40) { NOTES[rng.below(NOTES.len() as u64) as usize] } else { "" };
        o.str("note", note);
        o.str("userNo", "");
        o.str("editUserId", staff_id);
        o.str("biddingWord", if engine == "百度" { topic } else { "" });
        o.str("groupId", "12");
        if engine == "百度" {
            o.str("tgPlanName", &format!("{}-{}", p.province, topic));
            o.str("tgKeywordName", topic);
        }

        o.key("currentChatJsonDetail");
        o.out.push('[');
        let mut t = chat_start;
        let recorder_base = 4_000_000_000_000_000_000u64 + rng.below(500_000_000_000_000_000);
        for i in 0..n {
            if i > 0 {
                o.out.push(',');
            }
            t += 3 + rng.below(90) as i64;
            // Staff greets first; then turns alternate, with some runs.
            let staff = if i == 0 { rng.chance(70) } else { rng.chance(45) };
            let (kind, text) = if i == 0 && staff && rng.chance(35) {
                (
                    "RECORD_RICH_TEXT",
                    format!(
                        "<p>您好，欢迎咨询<span style=\"color:#e53935;\">{COMPANY_NAME}</span>！</p><p>请问有什么可以帮您？<br/>咨询热线：400-{}-{}</p>",
                        rng.digits(3),
                        rng.digits(4)
                    ),
                )
            } else if !staff && !p.mobile.is_empty() && rng.chance(4) {
                (
                    "RECORD_RICH_TEXT",
                    format!(
                        "<form class=\"el-form\"><div><input name=\"name\" placeholder=\"您的姓名\" value=\"{}\"></div><div><input name=\"mobile\" placeholder=\"手机号码\" value=\"{}\"></div></form>",
                        p.name, p.mobile
                    ),
                )
            } else {
                let line = if staff { rng.pick(STAFF_LINES) } else { rng.pick(VISITOR_LINES) };
                let mobile = if p.mobile.is_empty() { "稍后发" } else { p.mobile.as_str() };
                (
                    "RECORD_RECORD",
                    line.replace("{topic}", topic)
                        .replace("{city}", p.city)
                        .replace("{mobile}", mobile)
                        .replace("{company}", COMPANY_NAME),
                )
            };
            let mut m = Obj::new(o.out);
            m.raw("chat_id", &chat_id);
            m.str("create_time", &china_time(t));
            m.str("from_id", if staff { staff_id } else { &visitor_from });
            m.str("message", &text);
            let recorder_id = (recorder_base + i as u64).to_string();
            if bare_ids {
                m.raw("recorder_id", &recorder_id);
            } else {
                m.str("recorder_id", &recorder_id);
            }
            m.str("type", kind);
            if sender_types {
                m.str("sender_type", if staff { "0" } else { "1" });
            }
            m.end();
        }
        o.out.push(']');
        o.end();
    }
}

/// The pushes of an ingest run: mostly new visitors, some repeat visitors (a later chat of a
/// visitor pushed before). Push `i` is the same for every run with the same seed.
#[derive(Debug, Clone)]
pub struct PushSequence {
    pub cards: Cards,
    /// Percent of pushes that are a repeat visitor.
    pub repeat_percent: u64,
    /// The run's first push: a repeat names a visitor first pushed at or after it.
    pub first: u64,
}

impl PushSequence {
    /// (visitor, round) of push `i`: a new visitor is numbered by its push, a repeat names the
    /// visitor of an earlier push of the run.
    pub fn target(&self, i: u64) -> (u64, u64) {
        let mut j = i;
        loop {
            let mut rng = Rng::new(self.cards.seed, j, u64::MAX);
            if j > self.first && rng.below(100) < self.repeat_percent {
                j = self.first + rng.below(j - self.first);
            } else {
                return (j, if j == i { 0 } else { i });
            }
        }
    }

    /// The body of push `i`.
    pub fn body(&self, i: u64) -> String {
        let (visitor, round) = self.target(i);
        self.cards.card(visitor, round, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_deterministic_valid_json_and_about_two_and_a_half_kilobytes() {
        let seq = PushSequence { cards: Cards::new(7), repeat_percent: 15, first: 0 };
        let mut total = 0;
        let mut repeats = 0;
        for i in 0..2000 {
            let body = seq.body(i);
            assert_eq!(body, seq.body(i));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            let n = v["currentChatJsonDetail"].as_array().map_or(0, Vec::len);
            assert!((2..=40).contains(&n), "{n} messages");
            assert_eq!(v["visitorStaticId"].as_str().map(str::len), Some(32));
            assert!(body.contains("http:\\/\\/"), "escaped slashes");
            total += body.len();
            if seq.target(i).1 != 0 {
                repeats += 1;
            }
        }
        let average = total / 2000;
        assert!((2000..3000).contains(&average), "average {average} bytes");
        assert!((200..400).contains(&repeats), "{repeats} repeats");
    }

    #[test]
    fn an_imposed_transcript_length_is_kept() {
        let cards = Cards::new(1);
        let v: serde_json::Value = serde_json::from_str(&cards.card(5, 3, Some(30))).expect("JSON");
        assert_eq!(v["currentChatJsonDetail"].as_array().map(Vec::len), Some(30));
    }
}
