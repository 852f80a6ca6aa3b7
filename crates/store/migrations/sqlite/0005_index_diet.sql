-- Fewer index entries per imported or resolved row (decision 0004, import budget).
-- identity_links_value: searches go through the primary key (org_id, kind, value).
drop index identity_links_value;
-- Rows of an absorbed subtree all carry the cluster's root: unmerge finds
-- them through the root indexes, so the profile_id indexes only cost writes.
drop index identity_links_profile;
drop index timeline_by_profile;
-- Only absorbed profiles have merged_into; current ones need no entry.
drop index profiles_merged_into;
create index profiles_merged_into on profiles(org_id, merged_into) where merged_into is not null;
