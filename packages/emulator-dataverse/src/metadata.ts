import { canonicalNavName, TABLES, type ColumnType } from './schema.js'

const EDM: Record<ColumnType, string> = {
  string: 'Edm.String',
  memo: 'Edm.String',
  int: 'Edm.Int32',
  decimal: 'Edm.Decimal',
  bool: 'Edm.Boolean',
  datetime: 'Edm.DateTimeOffset',
  guid: 'Edm.Guid',
}

let cached: { plain: string; annotated: string } | null = null

/** CSDL for the implemented subset: entity types, keys, lookups, navigation, actions and functions. */
export function buildMetadata(annotations: boolean): string {
  if (!cached) cached = { plain: render(false), annotated: render(true) }
  return annotations ? cached.annotated : cached.plain
}

function render(annotations: boolean): string {
  const out: string[] = []
  out.push('<?xml version="1.0" encoding="utf-8"?>')
  out.push('<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">')
  out.push('<edmx:DataServices><Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">')
  for (const t of TABLES) {
    out.push(`<EntityType Name="${t.logicalName}"><Key><PropertyRef Name="${t.primaryKey}" /></Key>`)
    const cols = { [t.primaryKey]: 'guid' as ColumnType, ...t.columns }
    for (const [c, type] of Object.entries(cols)) out.push(`<Property Name="${c}" Type="${EDM[type]}" />`)
    for (const col of Object.keys(t.lookups)) out.push(`<Property Name="_${col}_value" Type="Edm.Guid" />`)
    for (const [col, def] of Object.entries(t.lookups)) {
      for (const target of def.targets) {
        out.push(`<NavigationProperty Name="${canonicalNavName(t, col, target)}" Type="mscrm.${target}"><ReferentialConstraint Property="_${col}_value" ReferencedProperty="${target === 'systemuser' ? 'systemuserid' : ''}" /></NavigationProperty>`)
      }
    }
    if (t.partyCollection) out.push(`<NavigationProperty Name="${t.partyCollection}" Type="Collection(mscrm.activityparty)" />`)
    if (t.logicalName === 'fieldsecurityprofile') {
      out.push('<NavigationProperty Name="systemuserprofiles_association" Type="Collection(mscrm.systemuser)" Partner="systemuserprofiles_association" />')
      out.push('<NavigationProperty Name="lk_fieldpermission_fieldsecurityprofileid" Type="Collection(mscrm.fieldpermission)" Partner="fieldsecurityprofileid" />')
    }
    if (t.logicalName === 'systemuser') out.push('<NavigationProperty Name="systemuserprofiles_association" Type="Collection(mscrm.fieldsecurityprofile)" Partner="systemuserprofiles_association" />')
    out.push('</EntityType>')
  }
  out.push('<ComplexType Name="WhoAmIResponse"><Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false" /><Property Name="UserId" Type="Edm.Guid" Nullable="false" /><Property Name="OrganizationId" Type="Edm.Guid" Nullable="false" /></ComplexType>')
  out.push('<ComplexType Name="RolePrivilege"><Property Name="Depth" Type="Edm.String" /><Property Name="PrivilegeId" Type="Edm.Guid" /><Property Name="BusinessUnitId" Type="Edm.Guid" /><Property Name="PrivilegeName" Type="Edm.String" /></ComplexType>')
  out.push('<ComplexType Name="RetrieveUserPrivilegesResponse"><Property Name="RolePrivileges" Type="Collection(mscrm.RolePrivilege)" /></ComplexType>')
  out.push('<ComplexType Name="FieldPermissionInfo"><Property Name="EntityName" Type="Edm.String" /><Property Name="AttributeLogicalName" Type="Edm.String" /><Property Name="CanRead" Type="Edm.Boolean" /><Property Name="CanCreate" Type="Edm.Boolean" /><Property Name="CanUpdate" Type="Edm.Boolean" /></ComplexType>')
  out.push('<ComplexType Name="RetrieveUserFieldPermissionsResponse"><Property Name="FieldPermissions" Type="Collection(mscrm.FieldPermissionInfo)" /></ComplexType>')
  out.push('<ComplexType Name="SendEmailResponse"><Property Name="Subject" Type="Edm.String" /></ComplexType>')
  out.push('<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false" /></Function>')
  out.push('<Function Name="RetrieveUserPrivileges" IsBound="true"><Parameter Name="entity" Type="mscrm.systemuser" Nullable="false" /><ReturnType Type="mscrm.RetrieveUserPrivilegesResponse" Nullable="false" /></Function>')
  out.push('<Function Name="RetrieveUserFieldPermissions" IsBound="true"><Parameter Name="entity" Type="mscrm.systemuser" Nullable="false" /><ReturnType Type="mscrm.RetrieveUserFieldPermissionsResponse" Nullable="false" /></Function>')
  out.push('<ComplexType Name="RetrievePrincipalAccessResponse"><Property Name="AccessRights" Type="Edm.String" /></ComplexType>')
  out.push('<Function Name="RetrievePrincipalAccess" IsBound="true"><Parameter Name="entity" Type="mscrm.systemuser" Nullable="false" /><Parameter Name="Target" Type="mscrm.crmbaseentity" Nullable="false" /><ReturnType Type="mscrm.RetrievePrincipalAccessResponse" Nullable="false" /></Function>')
  out.push('<Action Name="SendEmail" IsBound="true"><Parameter Name="entity" Type="mscrm.email" Nullable="false" /><Parameter Name="IssueSend" Type="Edm.Boolean" Nullable="false" /><Parameter Name="TrackingToken" Type="Edm.String" /><ReturnType Type="mscrm.SendEmailResponse" Nullable="false" /></Action>')
  out.push('<Action Name="WinOpportunity"><Parameter Name="OpportunityClose" Type="mscrm.opportunityclose" Nullable="false" /><Parameter Name="Status" Type="Edm.Int32" Nullable="false" /></Action>')
  out.push('<Action Name="LoseOpportunity"><Parameter Name="OpportunityClose" Type="mscrm.opportunityclose" Nullable="false" /><Parameter Name="Status" Type="Edm.Int32" Nullable="false" /></Action>')
  out.push('<Action Name="GrantAccess"><Parameter Name="Target" Type="mscrm.crmbaseentity" Nullable="false" /><Parameter Name="PrincipalAccess" Type="mscrm.PrincipalAccess" Nullable="false" /></Action>')
  out.push('<Action Name="ModifyAccess"><Parameter Name="Target" Type="mscrm.crmbaseentity" Nullable="false" /><Parameter Name="PrincipalAccess" Type="mscrm.PrincipalAccess" Nullable="false" /></Action>')
  out.push('<Action Name="RevokeAccess"><Parameter Name="Target" Type="mscrm.crmbaseentity" Nullable="false" /><Parameter Name="Revokee" Type="mscrm.principal" Nullable="false" /></Action>')
  out.push('<EntityContainer Name="System">')
  for (const t of TABLES) {
    if (annotations && t.changeTracking) {
      out.push(`<EntitySet Name="${t.entitySet}" EntityType="mscrm.${t.logicalName}"><Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record><PropertyValue Property="Supported" Bool="true" /></Record></Annotation></EntitySet>`)
    } else {
      out.push(`<EntitySet Name="${t.entitySet}" EntityType="mscrm.${t.logicalName}" />`)
    }
  }
  out.push('<FunctionImport Name="WhoAmI" Function="mscrm.WhoAmI" />')
  out.push('<ActionImport Name="WinOpportunity" Action="mscrm.WinOpportunity" /><ActionImport Name="LoseOpportunity" Action="mscrm.LoseOpportunity" />')
  out.push('<ActionImport Name="GrantAccess" Action="mscrm.GrantAccess" /><ActionImport Name="ModifyAccess" Action="mscrm.ModifyAccess" /><ActionImport Name="RevokeAccess" Action="mscrm.RevokeAccess" />')
  out.push('</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>')
  return out.join('\n')
}
