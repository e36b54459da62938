//! Console helpers over plain HTTP: sign in, pages and forms with the session cookie by hand.

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use super::Server;

/// A browser-like client that keeps nothing: cookies are passed by hand.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().expect("an HTTP client")
}

/// Signs in; returns the session cookie ("xiansuo_session=…").
pub async fn sign_in(server: &Server, name: &str, password: &str) -> String {
    let res = client()
        .post(format!("{}/login", server.base))
        .form(&[("name", name), ("password", password), ("next", "/")])
        .send()
        .await
        .expect("sign-in request");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in of {name}");
    let cookie = res.headers()["set-cookie"].to_str().expect("a cookie").to_string();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    cookie.split(';').next().expect("name=value").to_string()
}

pub async fn get(server: &Server, cookie: &str, path: &str) -> (StatusCode, String) {
    let res = client().get(format!("{}{path}", server.base)).header("cookie", cookie).send().await.expect("GET");
    (res.status(), res.text().await.expect("body"))
}

pub async fn post(server: &Server, cookie: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let res =
        client().post(format!("{}{path}", server.base)).header("cookie", cookie).form(form).send().await.expect("POST");
    (res.status(), res.text().await.expect("body"))
}

pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().expect("a value").to_string()
}

/// A new API token for the user `name`, made by the signed-in admin on the users page.
pub async fn api_token_of(server: &Server, admin: &str, name: &str) -> String {
    let (_, users) = get(server, admin, "/admin/users").await;
    let id = users
        .split(&format!("data-user=\"{name}\""))
        .nth(1)
        .and_then(|rest| rest.split("/admin/users/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("the user's row on the users page")
        .to_string();
    let (status, html) =
        post(server, admin, &format!("/admin/users/{id}/api-token"), &[("csrf", &csrf_of(&users))]).await;
    assert_eq!(status, StatusCode::OK);
    html.split("id=\"secret-value\">").nth(1).and_then(|s| s.split('<').next()).expect("the new token").to_string()
}

/// The id of user `name` in the owner list of a lead page (admins see it).
pub fn user_id_in_owner_list(lead_page: &str, name: &str) -> String {
    lead_page
        .split("<option value=\"")
        .filter_map(|o| o.split_once("\">"))
        .find(|(_, label)| label.starts_with(name))
        .map(|(v, _)| v.to_string())
        .expect("the user in the owner list")
}
