//! Projects and components with their leads, as far as a user deletion or deactivation meets
//! them: Jira refuses to delete a user who leads a project (the lead is the project's default
//! assignee), and lets a component lead go (the component is left without one); it refuses to
//! deactivate a project lead or a component lead (from 8.3, when `PUT /user` takes
//! `"active"`). The resources are
//! `GET/POST /project`, `GET/PUT /project/{key}` (`lead` is a username; `expand=lead` shows
//! it), `GET /project/{key}/components`, and `POST/GET/PUT /component/{id}` (`leadUserName`).

use super::api::{not_found, read, user_json, write, Request};
use super::directory::{Directory, JiraError};
use super::server::{Answer, JiraSimState};
use axum::http::Method;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub key: String,
    pub name: String,
    pub lead: u64,
    pub components: Vec<Component>,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub id: u64,
    pub name: String,
    pub lead: Option<u64>,
}

impl Directory {
    /// 400 when the user leads a project, naming the projects.
    pub(super) fn check_not_project_lead(&self, id: u64) -> Result<(), JiraError> {
        let led: Vec<&str> = self
            .projects
            .values()
            .filter(|p| p.lead == id)
            .map(|p| p.key.as_str())
            .collect();
        if led.is_empty() {
            return Ok(());
        }
        let name = self.user(id).map(|u| u.name.clone()).unwrap_or_default();
        Err(JiraError::message(
            400,
            format!(
                "Cannot delete user '{name}' because they are currently the project lead of: {}.",
                led.join(", ")
            ),
        ))
    }

    /// 400 when the user leads a component or a project: Jira's user service refuses to
    /// deactivate either (`DefaultUserService.validateUpdateUser`, which `PUT /user` with
    /// `"active": false` goes through from 8.3), each under the field `active` (the project
    /// lead's message replaces the component lead's, as in Jira's error map), naming the
    /// projects by key.
    pub(super) fn check_may_deactivate(&self, id: u64) -> Result<(), JiraError> {
        let keys = |f: &dyn Fn(&Project) -> bool| -> Vec<&str> {
            self.projects
                .values()
                .filter(|p| f(p))
                .map(|p| p.key.as_str())
                .collect()
        };
        let components = keys(&|p| p.components.iter().any(|c| c.lead == Some(id)));
        let projects = keys(&|p| p.lead == id);
        if !projects.is_empty() {
            return Err(JiraError::field(
                400,
                "active",
                format!(
                    "Cannot deactivate user because they are currently the project lead of: {}.",
                    projects.join(", ")
                ),
            ));
        }
        if !components.is_empty() {
            return Err(JiraError::field(
                400,
                "active",
                format!(
                    "Cannot deactivate user because they are currently a component lead in the projects: {}.",
                    components.join(", ")
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn drop_component_leads(&mut self, id: u64) {
        for p in self.projects.values_mut() {
            for c in &mut p.components {
                if c.lead == Some(id) {
                    c.lead = None;
                }
            }
        }
    }

    fn next_project_id(&self) -> u64 {
        let most = self
            .projects
            .values()
            .flat_map(|p| std::iter::once(p.id).chain(p.components.iter().map(|c| c.id)))
            .max()
            .unwrap_or(10_000);
        most + 1
    }

    fn lead_named(&self, field: &str, name: &str) -> Result<u64, JiraError> {
        self.by_name(name).ok_or_else(|| {
            JiraError::field(400, field, format!("The user '{name}' does not exist."))
        })
    }
}

fn lead_json(r: &Request, d: &Directory, id: Option<u64>) -> Value {
    id.and_then(|i| d.user(i))
        .map_or(Value::Null, |u| user_json(r, u, None))
}

fn project_json(r: &Request, d: &Directory, p: &Project, lead: bool) -> Value {
    let mut v = json!({
        "self": format!("{}/rest/api/2/project/{}", r.root, p.id),
        "id": p.id.to_string(),
        "key": p.key,
        "name": p.name,
        "projectTypeKey": "software",
    });
    if lead {
        v["lead"] = lead_json(r, d, Some(p.lead));
    }
    v
}

fn component_json(r: &Request, d: &Directory, p: &Project, c: &Component) -> Value {
    let mut v = json!({
        "self": format!("{}/rest/api/2/component/{}", r.root, c.id),
        "id": c.id.to_string(),
        "name": c.name,
        "project": p.key,
        "projectId": p.id,
        "assigneeType": "PROJECT_DEFAULT",
    });
    if c.lead.is_some() {
        v["lead"] = lead_json(r, d, c.lead);
        v["leadUserName"] = json!(c.lead.and_then(|i| d.user(i)).map(|u| u.name.clone()));
    }
    v
}

fn str_field<'a>(body: &'a Value, k: &str) -> Option<&'a str> {
    body.get(k).and_then(Value::as_str)
}

/// The project a path names by key or id.
fn project_key(d: &Directory, id_or_key: &str) -> Option<String> {
    d.projects
        .values()
        .find(|p| p.key == id_or_key || p.id.to_string() == id_or_key)
        .map(|p| p.key.clone())
}

pub(super) fn route(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let m = r.method;
    let expand_lead = r.q("expand").is_some_and(|e| e.contains("lead"));
    let parts: Vec<&str> = r.path.split('/').collect();
    match (parts.as_slice(), m) {
        (["project"], &Method::GET) => {
            let d = read(st)?;
            let all: Vec<Value> = d
                .projects
                .values()
                .map(|p| project_json(r, &d, p, expand_lead))
                .collect();
            Ok(Answer::json(200, Value::Array(all)))
        }
        (["project"], &Method::POST) => {
            let body = r.json()?;
            let key = str_field(&body, "key").unwrap_or_default().to_string();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(JiraError::field(
                    400,
                    "projectKey",
                    "You must specify a valid project key.",
                ));
            }
            let mut d = write(st)?;
            if d.projects.contains_key(&key) {
                return Err(JiraError::field(
                    400,
                    "projectKey",
                    format!("Project '{key}' uses this project key."),
                ));
            }
            let lead = d.lead_named("projectLead", str_field(&body, "lead").unwrap_or_default())?;
            let id = d.next_project_id();
            let name = str_field(&body, "name").unwrap_or(&key).to_string();
            d.projects.insert(
                key.clone(),
                Project {
                    id,
                    key: key.clone(),
                    name,
                    lead,
                    components: Vec::new(),
                },
            );
            Ok(Answer::json(
                201,
                json!({"self": format!("{}/rest/api/2/project/{id}", r.root), "id": id, "key": key}),
            ))
        }
        (["project", k], &Method::GET) => {
            let d = read(st)?;
            let key = project_key(&d, k).ok_or_else(|| not_found(r))?;
            let p = d.projects.get(&key).ok_or_else(|| not_found(r))?;
            Ok(Answer::json(200, project_json(r, &d, p, true)))
        }
        (["project", k], &Method::PUT) => {
            let body = r.json()?;
            let mut d = write(st)?;
            let key = project_key(&d, k).ok_or_else(|| {
                JiraError::message(404, format!("No project could be found with key '{k}'."))
            })?;
            let lead = match str_field(&body, "lead") {
                Some(n) => Some(d.lead_named("projectLead", n)?),
                None => None,
            };
            let p = d.projects.get_mut(&key).ok_or_else(|| not_found(r))?;
            if let Some(l) = lead {
                p.lead = l;
            }
            if let Some(n) = str_field(&body, "name") {
                p.name = n.to_string();
            }
            let p = d.projects.get(&key).ok_or_else(|| not_found(r))?;
            Ok(Answer::json(200, project_json(r, &d, p, true)))
        }
        (["project", k, "components"], &Method::GET) => {
            let d = read(st)?;
            let key = project_key(&d, k).ok_or_else(|| {
                JiraError::message(404, format!("No project could be found with key '{k}'."))
            })?;
            let p = d.projects.get(&key).ok_or_else(|| not_found(r))?;
            Ok(Answer::json(
                200,
                Value::Array(
                    p.components
                        .iter()
                        .map(|c| component_json(r, &d, p, c))
                        .collect(),
                ),
            ))
        }
        (["component"], &Method::POST) => {
            let body = r.json()?;
            let mut d = write(st)?;
            let project = str_field(&body, "project").unwrap_or_default();
            let key = project_key(&d, project)
                .ok_or_else(|| JiraError::field(400, "project", "The project does not exist."))?;
            let lead = match str_field(&body, "leadUserName") {
                Some(n) if !n.is_empty() => Some(d.lead_named("leadUserName", n)?),
                _ => None,
            };
            let id = d.next_project_id();
            let name = str_field(&body, "name").unwrap_or_default().to_string();
            let p = d.projects.get_mut(&key).ok_or_else(|| not_found(r))?;
            p.components.push(Component { id, name, lead });
            let p = d.projects.get(&key).ok_or_else(|| not_found(r))?;
            let c = p
                .components
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(|| not_found(r))?;
            Ok(Answer::json(201, component_json(r, &d, p, c)))
        }
        (["component", id], &Method::GET | &Method::PUT) => {
            let body = if m == Method::PUT {
                Some(r.json()?)
            } else {
                None
            };
            let mut d = write(st)?;
            let missing =
                || JiraError::message(404, format!("The component with id {id} does not exist."));
            let key = d
                .projects
                .values()
                .find(|p| p.components.iter().any(|c| c.id.to_string() == *id))
                .map(|p| p.key.clone())
                .ok_or_else(missing)?;
            if let Some(body) = &body {
                let lead = match str_field(body, "leadUserName") {
                    Some("") => Some(None),
                    Some(n) => Some(Some(d.lead_named("leadUserName", n)?)),
                    None => None,
                };
                let p = d.projects.get_mut(&key).ok_or_else(missing)?;
                let c = p
                    .components
                    .iter_mut()
                    .find(|c| c.id.to_string() == *id)
                    .ok_or_else(missing)?;
                if let Some(l) = lead {
                    c.lead = l;
                }
                if let Some(n) = str_field(body, "name") {
                    c.name = n.to_string();
                }
            }
            let p = d.projects.get(&key).ok_or_else(missing)?;
            let c = p
                .components
                .iter()
                .find(|c| c.id.to_string() == *id)
                .ok_or_else(missing)?;
            Ok(Answer::json(200, component_json(r, &d, p, c)))
        }
        _ => Err(not_found(r)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::jira::directory::UserFields;
    use crate::jira::{AppRole, Version};

    #[test]
    fn a_project_lead_is_not_deleted_and_a_component_lead_loses_its_component() {
        let mut d = Directory::new(Version(9, 12, 2), vec![AppRole::software(None)], "admin");
        let ann = d
            .create_user(
                UserFields {
                    name: Some("ann".into()),
                    email: Some("ann@example.com".into()),
                    display_name: Some("Ann".into()),
                    active: None,
                },
                false,
            )
            .unwrap();
        d.projects.insert(
            "ABC".into(),
            Project {
                id: 1,
                key: "ABC".into(),
                name: "Alpha".into(),
                lead: ann,
                components: vec![Component {
                    id: 2,
                    name: "Backend".into(),
                    lead: Some(ann),
                }],
            },
        );
        let e = d.delete_user(ann, None).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.messages[0].contains("project lead of: ABC"), "{e:?}");
        assert!(d.user(ann).is_some());
        d.projects.get_mut("ABC").unwrap().lead = d.by_name("admin").unwrap();
        d.delete_user(ann, None).unwrap();
        assert_eq!(d.projects["ABC"].components[0].lead, None);
    }

    #[test]
    fn neither_a_project_lead_nor_a_component_lead_is_deactivated() {
        let mut d = Directory::new(Version(9, 12, 2), vec![AppRole::software(None)], "admin");
        let admin = d.by_name("admin").unwrap();
        let mut make = |name: &str| {
            d.create_user(
                UserFields {
                    name: Some(name.into()),
                    email: Some(format!("{name}@example.com")),
                    display_name: Some(name.into()),
                    active: None,
                },
                false,
            )
            .unwrap()
        };
        let (ann, bob, cy) = (make("ann"), make("bob"), make("cy"));
        d.projects.insert(
            "ABC".into(),
            Project {
                id: 1,
                key: "ABC".into(),
                name: "Alpha".into(),
                lead: ann,
                components: vec![Component {
                    id: 2,
                    name: "Backend".into(),
                    lead: Some(bob),
                }],
            },
        );
        let off = || UserFields {
            active: Some(false),
            ..UserFields::default()
        };
        for (id, says) in [
            (ann, "project lead of: ABC"),
            (bob, "component lead in the projects: ABC"),
        ] {
            let e = d.update_user(id, off(), Some(admin)).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.errors["active"].contains(says), "{e:?}");
            assert!(d.user(id).unwrap().active);
        }
        d.update_user(cy, off(), Some(admin)).unwrap();
        assert!(
            !d.user(cy).unwrap().active,
            "a user who leads nothing is deactivated"
        );
        // Before 8.3 `active` is ignored, leads or not.
        d.version = Version(8, 2, 0);
        d.update_user(ann, off(), Some(admin)).unwrap();
        assert!(d.user(ann).unwrap().active);
    }
}
